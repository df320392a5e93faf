// The SSIM map of each plane (one channel of one image) of two [planes, h, w] float
// buffers: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5) applied "valid",
// so the map is (h - 10) x (w - 10), as gantry-image-metrics and piq compute it.
//
// One 16x16 block per output tile: the tile's 26x26 input patch of both images is staged
// in shared memory once, then each thread runs the 121-tap window over it. Blocks are
// numbered plane-major along grid.x (grid.y and grid.z are limited to 65535, and an
// evaluation batch can have more planes than that). Launch: `launch::ssim_map`.

#define GANTRY_TILE 16
#define GANTRY_WIN 11
#define GANTRY_PATCH (GANTRY_TILE + GANTRY_WIN - 1)

extern "C" __global__ void gantry_ssim_map(
    const float* __restrict__ x,
    const float* __restrict__ y,
    float* __restrict__ map,
    unsigned int h,
    unsigned int w,
    unsigned int tiles_x,
    unsigned int tiles_y,
    unsigned int planes,
    float c1,
    float c2)
{
    // +1 column: neighbouring threads of a warp read along a row; the pad keeps the
    // column walk of the staging loop off a single bank.
    __shared__ float sx[GANTRY_PATCH][GANTRY_PATCH + 1];
    __shared__ float sy[GANTRY_PATCH][GANTRY_PATCH + 1];

    const unsigned int tiles = tiles_x * tiles_y;
    const unsigned int plane = blockIdx.x / tiles;
    if (plane >= planes) {
        return; // uniform across the block
    }
    const unsigned int tile = blockIdx.x - plane * tiles;
    const unsigned int x0 = (tile % tiles_x) * GANTRY_TILE;
    const unsigned int y0 = (tile / tiles_x) * GANTRY_TILE;
    const float* px = x + (size_t)plane * h * w;
    const float* py = y + (size_t)plane * h * w;

    // Stage the patch; pixels past the image's edge (the last tiles' tails) read as 0 and
    // only ever feed outputs that are not written.
    const unsigned int tid = threadIdx.y * GANTRY_TILE + threadIdx.x;
    for (unsigned int i = tid; i < GANTRY_PATCH * GANTRY_PATCH; i += GANTRY_TILE * GANTRY_TILE) {
        const unsigned int r = i / GANTRY_PATCH;
        const unsigned int c = i - r * GANTRY_PATCH;
        const unsigned int gy = y0 + r;
        const unsigned int gx = x0 + c;
        const bool inside = gy < h && gx < w;
        sx[r][c] = inside ? px[(size_t)gy * w + gx] : 0.0f;
        sy[r][c] = inside ? py[(size_t)gy * w + gx] : 0.0f;
    }
    __syncthreads();

    const unsigned int out_h = h - GANTRY_WIN + 1;
    const unsigned int out_w = w - GANTRY_WIN + 1;
    const unsigned int ox = x0 + threadIdx.x;
    const unsigned int oy = y0 + threadIdx.y;
    if (ox >= out_w || oy >= out_h) {
        return; // after the only barrier
    }

    // The normalised 1-D Gaussian; the window is its outer product.
    float g[GANTRY_WIN];
    float g_sum = 0.0f;
#pragma unroll
    for (int i = 0; i < GANTRY_WIN; ++i) {
        const float d = (float)(i - GANTRY_WIN / 2);
        g[i] = expf(-(d * d) / (2.0f * 1.5f * 1.5f));
        g_sum += g[i];
    }
#pragma unroll
    for (int i = 0; i < GANTRY_WIN; ++i) {
        g[i] /= g_sum;
    }

    float mx = 0.0f, my = 0.0f, sxx = 0.0f, syy = 0.0f, sxy = 0.0f;
#pragma unroll
    for (int i = 0; i < GANTRY_WIN; ++i) {
        float rx = 0.0f, ry = 0.0f, rxx = 0.0f, ryy = 0.0f, rxy = 0.0f;
#pragma unroll
        for (int j = 0; j < GANTRY_WIN; ++j) {
            const float a = sx[threadIdx.y + i][threadIdx.x + j];
            const float b = sy[threadIdx.y + i][threadIdx.x + j];
            rx = fmaf(g[j], a, rx);
            ry = fmaf(g[j], b, ry);
            rxx = fmaf(g[j], a * a, rxx);
            ryy = fmaf(g[j], b * b, ryy);
            rxy = fmaf(g[j], a * b, rxy);
        }
        mx = fmaf(g[i], rx, mx);
        my = fmaf(g[i], ry, my);
        sxx = fmaf(g[i], rxx, sxx);
        syy = fmaf(g[i], ryy, syy);
        sxy = fmaf(g[i], rxy, sxy);
    }
    const float vx = sxx - mx * mx;
    const float vy = syy - my * my;
    const float cov = sxy - mx * my;
    const float ssim = ((2.0f * mx * my + c1) * (2.0f * cov + c2))
        / ((mx * mx + my * my + c1) * (vx + vy + c2));
    map[(size_t)plane * out_h * out_w + (size_t)oy * out_w + ox] = ssim;
}
