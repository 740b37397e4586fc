// Which kernels OpenBLAS chose for this CPU (blas_core.h).
#include "blas_core.h"

#include <cblas.h>

#include <algorithm>
#include <array>

namespace recsys {

BlasCpu this_blas_cpu() {
    BlasCpu c;
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
    return c;
}

std::string blas_core_name() {
    const char *name = openblas_get_corename();
    return name ? std::string(name) : std::string();
}

std::string better_blas_core(const std::string &core, const BlasCpu &cpu) {
    // OpenBLAS's x86-64 targets by the widest vectors their sgemm uses.
    static const std::array<const char *, 3> avx512_cores = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const std::array<const char *, 3> avx2_cores = {"Haswell", "Zen", "Excavator"};
    static const std::array<const char *, 17> older_cores = {
        "Prescott", "Core2",     "Penryn",     "Dunnington", "Nehalem",   "Atom",      "Opteron", "Opteron(SSE3)",
        "Barcelona", "Bobcat",   "Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Katmai", "Coppermine",
        "Northwood"};
    const auto in = [&core](const auto &names) {
        return std::any_of(names.begin(), names.end(), [&core](const char *n) { return core == n; });
    };
    const bool avx512_kernels = in(avx512_cores);
    const bool avx2_kernels = avx512_kernels || in(avx2_cores);
    if (!avx2_kernels && !in(older_cores)) return "";  // not a name we know: no advice
    if (cpu.avx512f && !avx512_kernels) return cpu.avx512_bf16 ? "Cooperlake" : "SkylakeX";
    if (cpu.avx2 && cpu.fma && !avx2_kernels) return "Haswell";
    return "";
}

}  // namespace recsys
