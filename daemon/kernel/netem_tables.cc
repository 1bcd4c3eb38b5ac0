#include "kernel/netem_tables.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>

namespace faultline::kernel {
namespace {

// The tables netem users know come from NIST Net's generators, shipped with iproute2 (netem/normal.c,
// pareto.c, paretonormal.c). They tabulate 16384 quantiles and keep every fourth, so quantile index
// 4j (of 16384) becomes entry j (of 4096). Reproducing their exact numbers, not just the same
// distributions, keeps a fault made by the agent identical to the same fault made with tc.
constexpr int kQuantiles = 16384;
constexpr int kQuantileStride = kQuantiles / static_cast<int>(kNetemTableSize);

int16_t ClampToEntry(long value) { return static_cast<int16_t>(std::clamp<long>(value, SHRT_MIN, SHRT_MAX)); }

double StandardNormalCdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// The standard normal quantile of index `quantile` (of kQuantiles), in units of NETEM_DIST_SCALE and
// not yet clamped to 16 bits. NIST Net does not invert the CDF exactly: it walks x over a grid of
// step 0.00005 from -10 and records, for each quantile index, the last grid point whose CDF rounds to
// that index. That point is the largest x on the grid with kQuantiles * CDF(x) < index + 1/2; the
// CDF is monotonic, so bisection over the grid finds the same point.
long NormalQuantileScaled(int quantile) {
  constexpr double kGridStart = -10.0;
  constexpr double kGridStep = 0.00005;
  constexpr long kGridPoints = 401000;  // up to x = 10.05, where NIST Net's walk ends
  const double bound = quantile + 0.5;
  auto below = [&](long k) { return kQuantiles * StandardNormalCdf(kGridStart + k * kGridStep) < bound; };
  long low = 0;  // below(low) holds: the CDF at -10 is ~7.6e-24
  long high = kGridPoints;
  while (high - low > 1) {
    long middle = low + (high - low) / 2;
    (below(middle) ? low : high) = middle;
  }
  return std::lrint((kGridStart + low * kGridStep) * kNetemDistScale);
}

// Pareto with shape 3 and scale 1 (mean 3/2), shifted to mean 0 and scaled by 4/3, in units of
// NETEM_DIST_SCALE: the value exceeded with probability `survival`. Clamped above only, as NIST Net
// does; its left end is -(3/2)(4/3) = -2/3 of a jitter.
long ParetoScaled(double survival) {
  constexpr double kShape = 3.0;
  double value = 1.0 / std::pow(survival, 1.0 / kShape);
  value = (value - 1.5) * (4.0 / 3.0) * kNetemDistScale;
  return std::lrint(std::min(value, static_cast<double>(SHRT_MAX)));
}

std::vector<int16_t> NormalTable() {
  std::vector<int16_t> table(kNetemTableSize);
  for (size_t j = 0; j < kNetemTableSize; ++j) {
    table[j] = ClampToEntry(NormalQuantileScaled(static_cast<int>(j) * kQuantileStride));
  }
  return table;
}

// Entry j is the value exceeded with probability 1 - j/4096, from the minimum upwards.
long ParetoEntry(size_t j) { return ParetoScaled(1.0 - static_cast<double>(j) / kNetemTableSize); }

std::vector<int16_t> ParetoTable() {
  std::vector<int16_t> table(kNetemTableSize);
  for (size_t j = 0; j < kNetemTableSize; ++j) table[j] = ClampToEntry(ParetoEntry(j));
  return table;
}

// NIST Net's mix of a quarter normal and three quarters Pareto, quantile by quantile, with C's
// truncating integer division (the normal part unclamped, the Pareto part clamped above).
std::vector<int16_t> ParetoNormalTable() {
  std::vector<int16_t> table(kNetemTableSize);
  for (size_t j = 0; j < kNetemTableSize; ++j) {
    long normal = NormalQuantileScaled(static_cast<int>(j) * kQuantileStride);
    table[j] = ClampToEntry((normal + 3 * ParetoEntry(j)) / 4);
  }
  return table;
}

constexpr std::array<std::pair<DelayDistribution, std::string_view>, 4> kNames = {{
    {DelayDistribution::kUniform, "uniform"},
    {DelayDistribution::kNormal, "normal"},
    {DelayDistribution::kPareto, "pareto"},
    {DelayDistribution::kParetoNormal, "paretonormal"},
}};

}  // namespace

std::string_view DelayDistributionName(DelayDistribution distribution) {
  for (const auto& [value, name] : kNames) {
    if (value == distribution) return name;
  }
  return "unknown";
}

std::optional<DelayDistribution> DelayDistributionFromName(std::string_view name) {
  for (const auto& [value, known] : kNames) {
    if (known == name) return value;
  }
  return std::nullopt;
}

std::vector<int16_t> NetemDistributionTable(DelayDistribution distribution) {
  switch (distribution) {
    case DelayDistribution::kUniform:
      return {};
    case DelayDistribution::kNormal:
      return NormalTable();
    case DelayDistribution::kPareto:
      return ParetoTable();
    case DelayDistribution::kParetoNormal:
      return ParetoNormalTable();
  }
  return {};
}

}  // namespace faultline::kernel
