import Foundation
import NIOPosix

/// Event-loop threads, optionally pinned each to its own CPU (`pin_workers: true`).
///
/// Why pin: with as many busy threads as CPUs, Linux may put two event loops on one CPU and let
/// them take turns in scheduler slices (8 ms here) while every connection of the waiting loop
/// stalls. Measured with `loadtest/overhead.sh`'s setup (2 CPUs, wrk -c64, unpinned then pinned,
/// back to back): p99 4.76 → 1.97 ms and 4.65 → 1.98 ms at the same throughput. nginx
/// (`worker_cpu_affinity`) and HAProxy (`cpu-map`) offer the same.
public enum WorkerAffinity {
    /// The CPUs this process may run on (`Cpus_allowed_list` in /proc/self/status), in order;
    /// empty where unknown (not Linux).
    public static func allowedCPUs(status: String? = nil) -> [Int] {
        guard let text = status ?? (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return [] }
        var cpus: [Int] = []
        for part in line.dropFirst("Cpus_allowed_list:".count).split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            if bounds.count == 1 {
                cpus.append(bounds[0])
            } else if bounds.count == 2, bounds[0] <= bounds[1] {
                cpus.append(contentsOf: bounds[0]...bounds[1])
            } else {
                return []
            }
        }
        return cpus
    }

    /// `workers` event loops; when `pinned`, loop i runs on the i-th allowed CPU (wrapping).
    /// Returns the CPUs used, or nil when not pinned (not asked, or the CPUs are unknown).
    public static func makeGroup(workers: Int, pinned: Bool) -> (MultiThreadedEventLoopGroup, [Int]?) {
        let cpus = pinned ? allowedCPUs() : []
        guard !cpus.isEmpty else { return (MultiThreadedEventLoopGroup(numberOfThreads: workers), nil) }
        let chosen = (0..<workers).map { cpus[$0 % cpus.count] }
        return (MultiThreadedEventLoopGroup(pinnedCPUIDs: chosen), chosen)
    }
}
