// The Santander product recommendation data: the 24 product flag columns in file order,
// and the customer columns of the clean relation that recsys reads (docs/data.md).
#pragma once

#include <array>

namespace recsys::santander {

constexpr std::array<const char *, 24> kProductColumns = {
    "ind_ahor_fin_ult1", "ind_aval_fin_ult1", "ind_cco_fin_ult1",  "ind_cder_fin_ult1", "ind_cno_fin_ult1",
    "ind_ctju_fin_ult1", "ind_ctma_fin_ult1", "ind_ctop_fin_ult1", "ind_ctpp_fin_ult1", "ind_deco_fin_ult1",
    "ind_deme_fin_ult1", "ind_dela_fin_ult1", "ind_ecue_fin_ult1", "ind_fond_fin_ult1", "ind_hip_fin_ult1",
    "ind_plan_fin_ult1", "ind_pres_fin_ult1", "ind_reca_fin_ult1", "ind_tjcr_fin_ult1", "ind_valo_fin_ult1",
    "ind_viv_fin_ult1",  "ind_nomina_ult1",   "ind_nom_pens_ult1", "ind_recibo_ult1",
};

// Columns of the clean relation, in order, before the product flags:
//   fecha_dato date, ncodpers bigint, ind_empleado text, pais_residencia text, sexo text,
//   age integer, fecha_alta date, ind_nuevo integer, antiguedad integer, indrel integer,
//   tiprel_1mes text, indresi text, indext text, canal_entrada text, cod_prov integer,
//   ind_actividad_cliente integer, renta double precision, segmento text,
// then the 24 product flags as smallint 0/1 (NOT NULL).

}  // namespace recsys::santander
