#pragma once

#if defined(__CUDACC__)
#define FA3_HD __host__ __device__ __forceinline__
#else
#define FA3_HD inline
#endif
