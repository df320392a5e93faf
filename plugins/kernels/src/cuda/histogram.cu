// Histogram of scores: each block counts its grid-stride share into a private copy in
// dynamic shared memory (fast shared atomics), then adds its non-zero bins to the global
// counts (one global atomic per bin per block). `counts` must be zeroed before launch.
//
// Binning, identical to the CPU twin bit for bit: NaN is skipped; v <= lo goes to bin 0,
// v >= hi to the last bin; otherwise bin = (unsigned)((v - lo) * scale), clamped, where
// scale = bins / (hi - lo) computed in f32 by the caller. Launch: `launch::histogram`.
extern "C" __global__ void gantry_histogram(
    const float* __restrict__ x,
    unsigned long long n,
    float lo,
    float hi,
    float scale,
    unsigned int bins,
    unsigned int* __restrict__ counts)
{
    extern __shared__ unsigned int local_counts[];
    for (unsigned int i = threadIdx.x; i < bins; i += blockDim.x) {
        local_counts[i] = 0u;
    }
    __syncthreads();
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = x[i];
        if (isnan(v)) {
            continue;
        }
        unsigned int bin;
        if (v <= lo) {
            bin = 0u;
        } else if (v >= hi) {
            bin = bins - 1u;
        } else {
            bin = min((unsigned int)((v - lo) * scale), bins - 1u);
        }
        atomicAdd(&local_counts[bin], 1u);
    }
    __syncthreads();
    for (unsigned int i = threadIdx.x; i < bins; i += blockDim.x) {
        const unsigned int c = local_counts[i];
        if (c != 0u) {
            atomicAdd(&counts[i], c);
        }
    }
}
