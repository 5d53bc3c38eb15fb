import Foundation
import SluiceConfig
import SluiceCore

/// Where a discovered pool's replicas come from, asked every interval.
protocol ReplicaSource: Sendable {
    /// The replicas now, sorted; an error keeps the last list (a failing source is not an
    /// empty pool).
    func replicas() async throws -> [ReplicaID]
}

/// A file with one `host:port` a line (blank lines and `#` comments skipped), kept by something
/// else: a sidecar, a mounted ConfigMap.
struct FileReplicaSource: ReplicaSource {
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    let path: String

    func replicas() async throws -> [ReplicaID] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Invalid(description: "cannot read \(path): \(error.localizedDescription)")
        }
        return try Self.parse(text, path: path)
    }

    static func parse(_ text: String, path: String) throws -> [ReplicaID] {
        var found: Set<ReplicaID> = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard !content.isEmpty else { continue }
            guard let id = ConfigValues.hostPort(content) else {
                throw Invalid(description: "\(path) line \(index + 1): \"\(content)\" is not a host:port")
            }
            found.insert(id)
        }
        return found.sorted()
    }
}
