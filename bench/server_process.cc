#include "server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace kyrodb::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// {"http":N,"grpc":N,"pid":P} as kyrodb_server writes it.
bool ParsePortFile(const std::string& text, uint16_t* http, uint16_t* grpc) {
  unsigned h = 0, g = 0;
  if (std::sscanf(text.c_str(), " {\"http\":%u,\"grpc\":%u", &h, &g) != 2) return false;
  if (h == 0 || g == 0 || h > 65535 || g > 65535) return false;
  *http = static_cast<uint16_t>(h);
  *grpc = static_cast<uint16_t>(g);
  return true;
}

int PollMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, left));
}

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<std::unique_ptr<ServerProcess>> ServerProcess::Start(const std::string& binary, const std::string& dir,
                                                            const std::vector<std::string>& extra_args,
                                                            std::chrono::seconds ready_timeout) {
  const std::string port_file = dir + "/ports.json";
  const std::string log_path = dir + "/server.log";
  std::vector<std::string> args = {binary,        "--data-dir", dir + "/data", "--http-port", "0",
                                   "--grpc-port", "0",          "--port-file", port_file};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // Watch the directory before the child exists, so the port file's rename cannot be missed.
  Fd watch{inotify_init1(IN_CLOEXEC | IN_NONBLOCK)};
  if (watch.fd < 0 || inotify_add_watch(watch.fd, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    return Status::IoError("inotify on " + dir + " failed");
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return Status::IoError("cannot start " + binary + ": " + std::strerror(rc));
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Status::IoError("pidfd_open failed");
  }
  std::unique_ptr<ServerProcess> server(new ServerProcess(pid, pidfd, log_path));

  // Bounded wait: the port file appears (ready), the child exits (failed), or the deadline.
  const auto deadline = Clock::now() + ready_timeout;
  for (;;) {
    if (ParsePortFile(ReadFile(port_file), &server->http_port_, &server->grpc_port_)) return server;
    pollfd fds[2] = {{watch.fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    const int n = ::poll(fds, 2, PollMs(deadline));
    if (n == 0) {
      return Status::Unavailable("kyrodb_server not ready after " + std::to_string(ready_timeout.count()) +
                                 " s; log:\n" + server->LogTail());
    }
    if (fds[1].revents & POLLIN) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      server->reaped_ = true;
      return Status::Unavailable("kyrodb_server exited during start-up (status " + std::to_string(status) +
                                 "); log:\n" + server->LogTail());
    }
    char events[4096];
    while (::read(watch.fd, events, sizeof(events)) > 0) {
    }
  }
}

ServerProcess::~ServerProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  ::close(pidfd_);
}

double ServerProcess::CpuSeconds() const {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid_) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(paren + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After "(comm)": state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

Result<int> ServerProcess::Stop(std::chrono::seconds timeout) {
  if (reaped_) return Status::FailedPrecondition("kyrodb_server already stopped");
  ::kill(pid_, SIGTERM);
  pollfd fd = {pidfd_, POLLIN, 0};
  if (::poll(&fd, 1, static_cast<int>(std::chrono::milliseconds(timeout).count())) == 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    reaped_ = true;
    return Status::Unavailable("kyrodb_server did not exit within " + std::to_string(timeout.count()) +
                               " s of SIGTERM (killed)");
  }
  int status = 0;
  ::waitpid(pid_, &status, 0);
  reaped_ = true;
  if (WIFSIGNALED(status)) {
    return Status::Internal("kyrodb_server died of signal " + std::to_string(WTERMSIG(status)) + "; log:\n" +
                            LogTail());
  }
  return WEXITSTATUS(status);
}

std::string ServerProcess::LogTail() const {
  const std::string log = ReadFile(log_path_);
  size_t start = log.size();
  for (int lines = 0; start > 0 && lines < 20;) {
    if (log[--start] == '\n' && start + 1 < log.size()) ++lines;
  }
  return log.substr(start);
}

}  // namespace kyrodb::bench
