// Where the block scheduler puts a grid of CTAs that fit two per SM, as the
// Hopper kernel's short tile launches them (256 threads, ~100 KB of shared
// memory). The tile order for one such wave (tile_order.h) relies on CTAs
// 0 .. sms-1 landing on distinct SMs, and pairs best where CTA c + sms lands
// beside CTA c; this prints, for several grid sizes and repeated launches,
// how often each holds.
//
//   nvcc -std=c++17 -arch=sm_90a -o /tmp/sm_placement bench/sm_placement.cu && /tmp/sm_placement
#include <cstdio>
#include <set>
#include <vector>

namespace {

constexpr int kThreads = 256;
constexpr int kSmemBytes = 100 * 1024;
constexpr int kTrials = 20;

// Every CTA stays resident for `spin` cycles, so that the whole grid is on
// the GPU at once, as the persistent kernel's is.
__global__ void __launch_bounds__(kThreads, 2) RecordSm(int* smid, long long spin) {
  extern __shared__ volatile char smem[];
  if (threadIdx.x == 0) {
    int id;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
    smid[blockIdx.x] = id;
    smem[0] = 1;
    const long long start = clock64();
    while (clock64() - start < spin) {
    }
  }
}

bool Check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) std::printf("%s: %s\n", what, cudaGetErrorString(err));
  return err == cudaSuccess;
}

}  // namespace

int main() {
  int sms = 0, per_sm = 0;
  if (!Check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "SM count") ||
      !Check(cudaFuncSetAttribute(RecordSm, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes), "smem") ||
      !Check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, RecordSm, kThreads, kSmemBytes), "occupancy")) {
    return 1;
  }
  std::printf("%d SMs, %d CTAs per SM\n", sms, per_sm);
  int* device_smid = nullptr;
  if (!Check(cudaMalloc(&device_smid, 2 * sms * sizeof(int)), "malloc")) return 1;
  for (const int grid : {2 * sms, 2 * sms - 1, 2 * sms - 8, sms + sms / 2, sms + 1}) {
    int first_wave_distinct = 0, pairs_beside = 0;
    for (int trial = 0; trial < kTrials; ++trial) {
      RecordSm<<<grid, kThreads, kSmemBytes>>>(device_smid, 200000);
      std::vector<int> smid(grid);
      if (!Check(cudaMemcpy(smid.data(), device_smid, grid * sizeof(int), cudaMemcpyDeviceToHost), "copy")) return 1;
      first_wave_distinct += std::set<int>(smid.begin(), smid.begin() + sms).size() == size_t(sms);
      bool beside = true;
      for (int c = sms; c < grid; ++c) beside = beside && smid[c] == smid[c - sms];
      pairs_beside += beside;
      if (trial == 0) {
        std::printf("grid %d, first launch: smid of CTAs 0..7:", grid);
        for (int c = 0; c < 8; ++c) std::printf(" %d", smid[c]);
        std::printf(" | CTAs %d..%d:", sms, sms + 7);
        for (int c = sms; c < sms + 8 && c < grid; ++c) std::printf(" %d", smid[c]);
        // Which first-wave CTA each second-wave CTA shares its SM with.
        std::printf(" | partners of CTAs %d..:", sms);
        for (int c = sms; c < sms + 16 && c < grid; ++c) {
          int partner = -1;
          for (int f = 0; f < sms; ++f) partner = smid[f] == smid[c] ? f : partner;
          std::printf(" %d", partner);
        }
        std::printf("\n");
      }
    }
    std::printf("grid %d: CTAs 0..%d on distinct SMs in %d/%d launches; every CTA c >= %d beside CTA c - %d in %d/%d\n",
                grid, sms - 1, first_wave_distinct, kTrials, sms, sms, pairs_beside, kTrials);
  }
  return 0;
}
