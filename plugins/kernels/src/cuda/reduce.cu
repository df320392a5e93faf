// Per-row reductions over a contiguous [rows, row_len] float buffer: one block per row
// (a row is one image), a strided loop over the row, warp shuffles, then one partial per
// warp in dynamic shared memory. Deterministic: no atomics, a fixed summation order.
// Launch: see `launch::row_reduce` (block a multiple of 32, at most 1024 threads,
// shared memory = 4 bytes per warp).

__device__ __forceinline__ float gantry_warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}

// The block's total, valid in thread 0.
__device__ __forceinline__ float gantry_block_sum(float v, float* warp_partials) {
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int warp = threadIdx.x >> 5;
    v = gantry_warp_sum(v);
    if (lane == 0) {
        warp_partials[warp] = v;
    }
    __syncthreads();
    const unsigned int warps = blockDim.x >> 5;
    v = threadIdx.x < warps ? warp_partials[threadIdx.x] : 0.0f;
    if (warp == 0) {
        v = gantry_warp_sum(v);
    }
    return v;
}

// out[r] = sum_i (a[r, i] - b[r, i])^2: a reconstruction error score per image, so that
// evaluation copies `rows` floats off the GPU instead of `rows` images.
extern "C" __global__ void gantry_row_sse(
    const float* __restrict__ a,
    const float* __restrict__ b,
    float* __restrict__ out,
    unsigned long long row_len,
    unsigned int rows)
{
    extern __shared__ float warp_partials[];
    const unsigned int row = blockIdx.x;
    if (row >= rows) {
        return; // uniform across the block: no thread is left waiting at a barrier
    }
    const float* pa = a + (size_t)row * row_len;
    const float* pb = b + (size_t)row * row_len;
    float acc = 0.0f;
    for (size_t i = threadIdx.x; i < row_len; i += blockDim.x) {
        const float d = pa[i] - pb[i];
        acc = fmaf(d, d, acc);
    }
    acc = gantry_block_sum(acc, warp_partials);
    if (threadIdx.x == 0) {
        out[row] = acc;
    }
}

// out[r] = sum_i x[r, i]: finishes the SSIM map into one sum per plane.
extern "C" __global__ void gantry_row_sum(
    const float* __restrict__ x,
    float* __restrict__ out,
    unsigned long long row_len,
    unsigned int rows)
{
    extern __shared__ float warp_partials[];
    const unsigned int row = blockIdx.x;
    if (row >= rows) {
        return;
    }
    const float* px = x + (size_t)row * row_len;
    float acc = 0.0f;
    for (size_t i = threadIdx.x; i < row_len; i += blockDim.x) {
        acc += px[i];
    }
    acc = gantry_block_sum(acc, warp_partials);
    if (threadIdx.x == 0) {
        out[row] = acc;
    }
}
