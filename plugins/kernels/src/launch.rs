//! Launch configurations: grid and block shapes and dynamic shared memory for each kernel,
//! with the limits every CUDA GPU since compute capability 3.0 shares (1024 threads per
//! block, grid.x up to 2^31 - 1, 48 KiB of shared memory without opting in). A shape that
//! cannot be launched is an error here, before any GPU call; an empty input is `None`
//! (CUDA refuses a zero-sized grid, and there is nothing to do).

/// Threads per warp.
pub const WARP: u32 = 32;
/// Most threads in one block.
pub const MAX_BLOCK: u32 = 1024;
/// Largest grid.x.
pub const MAX_GRID_X: u64 = (1 << 31) - 1;
/// Dynamic shared memory a kernel may use without `cudaFuncSetAttribute`.
pub const MAX_SHARED_BYTES: u32 = 48 * 1024;

/// Threads per block of the row reductions: enough for a 64x64 image in one pass of
/// 16 elements per thread, few enough that small rows don't idle most of the block.
pub const ROW_REDUCE_BLOCK: u32 = 256;
/// Threads per block of the histogram.
pub const HISTOGRAM_BLOCK: u32 = 256;
/// Histogram blocks beyond this just contend on the global atomics; the grid-stride loop
/// covers any `n`.
pub const HISTOGRAM_MAX_BLOCKS: u64 = 1024;
/// Side of the SSIM kernel's output tile (its block is TILE x TILE threads).
pub const SSIM_TILE: u32 = 16;

/// A kernel launch's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

/// Why a shape cannot be launched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("{what}: {count} blocks exceed CUDA's grid limit of {MAX_GRID_X}")]
    GridTooLarge { what: &'static str, count: u64 },
    #[error("{what}: {value} does not fit the kernel's 32-bit {field} argument")]
    TooLarge {
        what: &'static str,
        field: &'static str,
        value: u64,
    },
    #[error("histogram: {bins} bins need {bytes} bytes of shared memory, over the {MAX_SHARED_BYTES} available; use at most {} bins", MAX_SHARED_BYTES / 4)]
    TooManyBins { bins: usize, bytes: u64 },
    #[error("histogram: at least one bin is needed")]
    NoBins,
    #[error("SSIM: images of {h}x{w} are smaller than the {window}x{window} window")]
    SmallerThanWindow { h: usize, w: usize, window: usize },
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

fn fits_u32(what: &'static str, field: &'static str, value: usize) -> Result<u32, LaunchError> {
    u32::try_from(value).map_err(|_| LaunchError::TooLarge {
        what,
        field,
        value: value as u64,
    })
}

/// `gantry_row_sse` / `gantry_row_sum` over `rows` rows of `row_len` elements: one block
/// per row, `ROW_REDUCE_BLOCK` threads (fewer, down to one warp, for short rows), one f32
/// of shared memory per warp. Rows longer than the block are covered by the kernel's
/// strided loop, so `row_len` need not be a multiple of anything.
pub fn row_reduce(rows: usize, row_len: usize) -> Result<Option<Launch>, LaunchError> {
    if rows == 0 {
        return Ok(None);
    }
    let rows_u32 = fits_u32("row reduction", "rows", rows)?;
    if rows as u64 > MAX_GRID_X {
        return Err(LaunchError::GridTooLarge {
            what: "row reduction",
            count: rows as u64,
        });
    }
    let threads = (row_len.max(1) as u64)
        .next_power_of_two()
        .clamp(WARP as u64, ROW_REDUCE_BLOCK as u64) as u32;
    Ok(Some(Launch {
        grid: (rows_u32, 1, 1),
        block: (threads, 1, 1),
        shared_bytes: threads / WARP * 4,
    }))
}

/// `gantry_histogram` over `n` values into `bins` bins: one u32 of shared memory per bin,
/// enough blocks to give each thread a few values, capped (the loop strides the rest).
pub fn histogram(n: usize, bins: usize) -> Result<Option<Launch>, LaunchError> {
    if bins == 0 {
        return Err(LaunchError::NoBins);
    }
    let bytes = bins as u64 * 4;
    if bytes > MAX_SHARED_BYTES as u64 {
        return Err(LaunchError::TooManyBins { bins, bytes });
    }
    if n == 0 {
        return Ok(None);
    }
    let blocks = ceil_div(n as u64, HISTOGRAM_BLOCK as u64).min(HISTOGRAM_MAX_BLOCKS);
    Ok(Some(Launch {
        grid: (blocks as u32, 1, 1),
        block: (HISTOGRAM_BLOCK, 1, 1),
        shared_bytes: bytes as u32,
    }))
}

/// The SSIM map's launch and the tile counts the kernel needs (`tiles_x`, `tiles_y`):
/// one TILE x TILE block per output tile of each plane, planes laid out along grid.x.
/// The last tile of a row or column may be partial (the kernel masks it).
pub fn ssim_map(
    planes: usize,
    h: usize,
    w: usize,
) -> Result<Option<(Launch, u32, u32)>, LaunchError> {
    let window = crate::SSIM_WINDOW;
    if h < window || w < window {
        return Err(LaunchError::SmallerThanWindow { h, w, window });
    }
    fits_u32("SSIM", "height", h)?;
    fits_u32("SSIM", "width", w)?;
    fits_u32("SSIM", "planes", planes)?;
    if planes == 0 {
        return Ok(None);
    }
    let tiles_x = ceil_div((w - window + 1) as u64, SSIM_TILE as u64);
    let tiles_y = ceil_div((h - window + 1) as u64, SSIM_TILE as u64);
    let blocks = tiles_x * tiles_y * planes as u64;
    if blocks > MAX_GRID_X {
        return Err(LaunchError::GridTooLarge {
            what: "SSIM",
            count: blocks,
        });
    }
    Ok(Some((
        Launch {
            grid: (blocks as u32, 1, 1),
            block: (SSIM_TILE, SSIM_TILE, 1),
            // The patches are static shared arrays in the kernel.
            shared_bytes: 0,
        },
        tiles_x as u32,
        tiles_y as u32,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element of a row is visited exactly once by the kernel's strided loop.
    fn visits(row_len: usize, threads: usize) -> Vec<u32> {
        let mut seen = vec![0u32; row_len];
        for t in 0..threads {
            let mut i = t;
            while i < row_len {
                seen[i] += 1;
                i += threads;
            }
        }
        seen
    }

    #[test]
    fn row_reduce_uses_one_block_per_row_and_a_warp_multiple() {
        let l = row_reduce(7, 4096).unwrap().unwrap();
        assert_eq!(l.grid, (7, 1, 1));
        assert_eq!(l.block, (256, 1, 1));
        assert_eq!(l.shared_bytes, 256 / 32 * 4);
        for len in [0, 1, 5, 31, 32, 33, 100, 255, 257, 4096, 4097, 49_152] {
            let l = row_reduce(3, len).unwrap().unwrap();
            let t = l.block.0;
            assert!(
                t.is_multiple_of(WARP) && (WARP..=MAX_BLOCK).contains(&t),
                "{len}: {t}"
            );
            assert_eq!(l.shared_bytes, t / WARP * 4);
            assert!(visits(len, t as usize).iter().all(|&v| v == 1), "{len}");
        }
        // A short row doesn't get 256 threads.
        assert_eq!(row_reduce(1, 40).unwrap().unwrap().block.0, 64);
    }

    #[test]
    fn row_reduce_of_nothing_launches_nothing_and_huge_counts_are_refused() {
        assert_eq!(row_reduce(0, 100).unwrap(), None);
        assert!(matches!(
            row_reduce(u32::MAX as usize + 1, 10),
            Err(LaunchError::TooLarge { .. })
        ));
        assert!(matches!(
            row_reduce(MAX_GRID_X as usize + 1, 10),
            Err(LaunchError::GridTooLarge { .. })
        ));
    }

    #[test]
    fn histogram_shares_a_capped_grid_and_refuses_bins_beyond_shared_memory() {
        let l = histogram(1000, 64).unwrap().unwrap();
        assert_eq!(l.grid, (4, 1, 1));
        assert_eq!(l.block, (256, 1, 1));
        assert_eq!(l.shared_bytes, 256);
        // Tail: 257 values need a second block.
        assert_eq!(histogram(257, 8).unwrap().unwrap().grid.0, 2);
        assert_eq!(histogram(256, 8).unwrap().unwrap().grid.0, 1);
        let big = histogram(10_000_000, 8).unwrap().unwrap();
        assert_eq!(big.grid.0 as u64, HISTOGRAM_MAX_BLOCKS);
        assert_eq!(histogram(0, 8).unwrap(), None);
        assert_eq!(histogram(10, 0), Err(LaunchError::NoBins));
        assert!(histogram(10, 12_288).is_ok());
        let err = histogram(10, 12_289).unwrap_err();
        assert!(err.to_string().contains("at most 12288 bins"), "{err}");
    }

    #[test]
    fn ssim_tiles_cover_the_valid_map_with_partial_tails() {
        // 64x64 images: a 54x54 map, 4x4 tiles of 16 (the last ones 6 wide).
        let (l, tx, ty) = ssim_map(10, 64, 64).unwrap().unwrap();
        assert_eq!((tx, ty), (4, 4));
        assert_eq!(l.grid, (160, 1, 1));
        assert_eq!(l.block, (16, 16, 1));
        // Exactly the window: a 1x1 map, one tile per plane.
        let (l, tx, ty) = ssim_map(3, 11, 11).unwrap().unwrap();
        assert_eq!((l.grid.0, tx, ty), (3, 1, 1));
        // Non-square, map 17 wide (2 tiles) and 6 high (1 tile).
        let (_, tx, ty) = ssim_map(1, 16, 27).unwrap().unwrap();
        assert_eq!((tx, ty), (2, 1));
        // Every output pixel belongs to exactly one (tile, thread).
        for (h, w) in [(11, 11), (26, 26), (27, 43), (64, 64), (100, 37)] {
            let (_, tx, ty) = ssim_map(1, h, w).unwrap().unwrap();
            let (oh, ow) = (h - 10, w - 10);
            let mut hits = vec![0u8; oh * ow];
            for tile in 0..(tx * ty) {
                let (x0, y0) = ((tile % tx) * SSIM_TILE, (tile / tx) * SSIM_TILE);
                for dy in 0..SSIM_TILE {
                    for dx in 0..SSIM_TILE {
                        let (ox, oy) = ((x0 + dx) as usize, (y0 + dy) as usize);
                        if ox < ow && oy < oh {
                            hits[oy * ow + ox] += 1;
                        }
                    }
                }
            }
            assert!(hits.iter().all(|&n| n == 1), "{h}x{w}");
        }
    }

    #[test]
    fn ssim_refuses_images_smaller_than_the_window_and_grids_past_the_limit() {
        let err = ssim_map(1, 10, 64).unwrap_err();
        assert!(err.to_string().contains("10x64"), "{err}");
        assert_eq!(ssim_map(0, 64, 64).unwrap(), None);
        // 4096x4096 planes: 256 x 256 tiles each; 40_000 of them pass 2^31 blocks.
        assert!(matches!(
            ssim_map(40_000, 4096, 4096),
            Err(LaunchError::GridTooLarge { .. })
        ));
    }
}
