/* The HDF5 dynamic-plugin entry points, so that h5dump, h5py and HDFView
 * read nboost files when HDF5_PLUGIN_PATH names build/plugins. */
#include <H5PLextern.h>

#include "h5zstd.h" /* same folder: the plugin target has no project include path */

H5PL_type_t H5PLget_plugin_type(void)
{
	return H5PL_TYPE_FILTER;
}

const void *H5PLget_plugin_info(void)
{
	return &h5zstd_class;
}
