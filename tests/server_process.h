// Runs kyrodb_server as a child process for integration tests: ephemeral loopback ports,
// its own data directory, output captured. Start() returns once the server logged "ready"
// (after recovery), or when it exited; no polling or sleeping.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef KYRODB_SERVER_BIN
#error "define KYRODB_SERVER_BIN (the kyrodb_server binary)"
#endif

namespace kyrodb::testing {

class ServerProcess {
 public:
  // Starts the server on `data_dir` with `extra` flags and ports 0 (unless `extra` gives
  // --http-port or --grpc-port). Check ready() after.
  static std::unique_ptr<ServerProcess> Start(const std::string& data_dir,
                                              const std::vector<std::string>& extra = {}) {
    auto p = std::unique_ptr<ServerProcess>(new ServerProcess());
    p->port_file_ = data_dir + ".ports.json";
    ::unlink(p->port_file_.c_str());
    std::vector<std::string> args = {KYRODB_SERVER_BIN, "--data-dir", data_dir, "--port-file", p->port_file_};
    for (const char* port : {"--http-port", "--grpc-port"}) {  // ephemeral unless `extra` names one
      if (std::find(extra.begin(), extra.end(), port) == extra.end()) args.insert(args.end(), {port, "0"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
    p->pid_ = ::fork();
    if (p->pid_ < 0) std::abort();
    if (p->pid_ == 0) {
      ::dup2(fds[1], 1);
      ::dup2(fds[1], 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    p->reader_ = std::thread([p = p.get(), fd = fds[0]] { p->Drain(fd); });
    {
      std::unique_lock<std::mutex> l(p->mu_);
      p->cv_.wait(l, [&] { return p->ready_ || p->eof_; });
    }
    if (p->ready_) {
      std::ifstream f(p->port_file_);
      std::stringstream ss;
      ss << f.rdbuf();
      const std::string s = ss.str();
      p->http_port_ = static_cast<uint16_t>(std::stoi(s.substr(s.find("\"http\":") + 7)));
      p->grpc_port_ = static_cast<uint16_t>(std::stoi(s.substr(s.find("\"grpc\":") + 7)));
    }
    return p;
  }

  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
    if (reader_.joinable()) reader_.join();
    ::unlink(port_file_.c_str());
  }

  bool ready() const { return ready_; }
  uint16_t http_port() const { return http_port_; }
  uint16_t grpc_port() const { return grpc_port_; }
  std::string grpc_target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  pid_t pid() const { return pid_; }

  void Signal(int sig) { ::kill(pid_, sig); }
  // Waits for the process; its exit code, or 128 + signal if a signal ended it.
  int Wait() {
    if (exited_) return status_;
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0) {
    }
    exited_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (reader_.joinable()) reader_.join();
    return status_;
  }
  // Everything the server printed so far.
  std::string Output() const {
    std::lock_guard<std::mutex> l(mu_);
    return output_;
  }

 private:
  ServerProcess() = default;

  void Drain(int fd) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard<std::mutex> l(mu_);
      if (n <= 0) {
        eof_ = true;
        cv_.notify_all();
        break;
      }
      output_.append(buf, static_cast<size_t>(n));
      if (!ready_ && output_.find(" ready\n") != std::string::npos) {
        ready_ = true;
        cv_.notify_all();
      }
    }
    ::close(fd);
  }

  pid_t pid_ = -1;
  std::string port_file_;
  uint16_t http_port_ = 0, grpc_port_ = 0;
  bool exited_ = false;
  int status_ = 0;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string output_;
  bool ready_ = false;
  bool eof_ = false;
};

}  // namespace kyrodb::testing
