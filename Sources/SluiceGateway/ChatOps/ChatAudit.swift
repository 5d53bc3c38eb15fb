import Foundation
import Logging
import Synchronization

/// Every chat command, with who asked, where and what came of it: in the log always, and as a
/// JSON line appended to `admin.chatops.audit_log` when set. Refused requests are recorded too
/// (without a user: an unsigned request's fields cannot be trusted).
final class ChatAudit: Sendable {
    private let path: String?
    private let logger: Logger
    private let lock = Mutex(())

    init(path: String?, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    func record(source: String, user: String, userID: String?, channel: String?, command: String, answer: String) {
        logger.notice("chat command", metadata: [
            "source": "\(source)", "user": "\(user)", "channel": "\(channel ?? "-")", "command": "\(command)",
        ])
        append([
            "time": Self.now(), "source": source, "user": user, "user_id": userID ?? "", "channel": channel ?? "",
            "command": command, "answer": answer,
        ])
    }

    func refused(reason: String, peer: String?) {
        logger.warning("chat command refused", metadata: ["reason": "\(reason)", "peer": "\(peer ?? "-")"])
        append(["time": Self.now(), "refused": reason, "peer": peer ?? ""])
    }

    private func append(_ entry: [String: String]) {
        guard let path, let data = try? JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys]) else { return }
        lock.withLock { _ in
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                logger.error("cannot write the chat audit log", metadata: ["path": "\(path)"])
                return
            }
            defer { try? handle.close() }
            _ = try? handle.seekToEnd()
            try? handle.write(contentsOf: data + Data("\n".utf8))
        }
    }

    private static func now() -> String {
        ISO8601DateFormatter().string(from: Date())
    }
}
