// Raw monthly snapshots of many customers, as read from the source relation.
//
// Both serving and training fill a HistoryBatch and hand it to the FeatureEncoder, so the
// two paths share one feature pipeline and cannot skew.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace recsys {

// Months are counted as year * 12 + (month - 1), so consecutive snapshots differ by one.
inline int32_t month_index(int year, int month) { return year * 12 + (month - 1); }

struct HistoryBatch {
    size_t feature_count = 0;  // = model.features.size()
    size_t product_count = 0;  // = model.products.size()

    std::vector<int64_t> customer_ids;
    // Customer c owns rows [row_begin[c], row_begin[c + 1]); rows are in ascending month order.
    std::vector<size_t> row_begin{0};
    std::vector<int32_t> month;
    // rows x feature_count. Numeric features: the raw value, NaN when NULL.
    // Categorical features: the vocabulary code, -1 when NULL or unknown.
    std::vector<float> values;
    // rows x product_count, each 0 or 1.
    std::vector<uint8_t> products;

    size_t customer_count() const { return customer_ids.size(); }
    size_t row_count() const { return month.size(); }

    void reset(size_t features, size_t product_columns) {
        feature_count = features;
        product_count = product_columns;
        customer_ids.clear();
        row_begin.assign(1, 0);
        month.clear();
        values.clear();
        products.clear();
    }
    // Starts a new customer; rows appended with add_row() belong to it until the next call.
    void begin_customer(int64_t id) {
        customer_ids.push_back(id);
        row_begin.push_back(row_begin.back());
    }
    // Removes the first n customers, keeping the rest (used to carry a customer whose rows
    // continue in the next fetch over to the next batch).
    void drop_first_customers(size_t n) {
        if (n == 0) return;
        const size_t rows = row_begin[n];
        customer_ids.erase(customer_ids.begin(), customer_ids.begin() + n);
        row_begin.erase(row_begin.begin(), row_begin.begin() + n);
        for (auto &r : row_begin) r -= rows;
        month.erase(month.begin(), month.begin() + rows);
        values.erase(values.begin(), values.begin() + rows * feature_count);
        products.erase(products.begin(), products.begin() + rows * product_count);
    }
    // Appends one month for the current customer; returns pointers to fill.
    void add_row(int32_t month_idx, float **value_slot, uint8_t **product_slot) {
        month.push_back(month_idx);
        values.resize(values.size() + feature_count);
        products.resize(products.size() + product_count);
        row_begin.back() += 1;
        *value_slot = values.data() + values.size() - feature_count;
        *product_slot = products.data() + products.size() - product_count;
    }
};

}  // namespace recsys
