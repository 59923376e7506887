/* PLACEHOLDER */
typedef int h5zstd_plugin_placeholder;
