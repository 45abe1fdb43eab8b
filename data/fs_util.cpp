#include "data/fs_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace im::data {

namespace {

// Closes a POSIX file descriptor on scope exit.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

void fsync_path(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  IM_CHECK(f.fd >= 0, "cannot open '", path, "' to sync it: ", std::strerror(errno));
  IM_CHECK(::fsync(f.fd) == 0, "cannot sync '", path, "' to disk: ", std::strerror(errno));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    IM_CHECK(f.fd >= 0, "cannot create '", tmp, "': ", std::strerror(errno));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(f.fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      IM_CHECK(n > 0, "cannot write '", tmp, "': ", std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    IM_CHECK(::fsync(f.fd) == 0, "cannot sync '", tmp, "' to disk: ", std::strerror(errno));
  }
  IM_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '", tmp, "' to '", path,
           "': ", std::strerror(errno));
  std::string dir = std::filesystem::path(path).parent_path().string();
  fsync_path(dir.empty() ? "." : dir);
}

}  // namespace im::data
