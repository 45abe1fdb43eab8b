// `infomamba_dist data ...`: converts raw datasets into HDF5 shards + manifest.pb.
#pragma once

namespace im::data {

// argv[0] is "data"; then `fashion-mnist --out DIR [--shards 8] [--src DIR]` or
// `mnist --out DIR --src DIR [--shards 8]`. Prints a short summary and returns 0; on a
// bad argument or a failed conversion prints one line
// "infomamba_dist data: error: ..." to stderr and returns 2. `--help` prints usage.
int run_data_command(int argc, char** argv);

}  // namespace im::data
