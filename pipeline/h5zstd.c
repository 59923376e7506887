/* PLACEHOLDER */
typedef int h5zstd_placeholder;
