import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Notices to a chat room's incoming webhook (Slack's and Mattermost's take `{"text": ...}`):
/// scale decisions, ejections, canary and drain changes. Sent in the background, one attempt
/// each with a deadline; at most `maxPending` at once, further notices dropped and logged,
/// so a chat service that hangs costs the gateway a bounded number of connections.
final class ChatNotifier: Sendable {
    let url: String
    private let client: BackgroundHTTPClient
    private let logger: Logger
    private let pending = Atomic<Int>(0)
    static let maxPending = 16
    static let deadline = TimeAmount.seconds(5)

    init(url: String, client: BackgroundHTTPClient, logger: Logger) {
        self.url = url
        self.client = client
        self.logger = logger
    }

    func notify(_ text: String) {
        guard pending.wrappingAdd(1, ordering: .relaxed).newValue <= Self.maxPending else {
            pending.wrappingSubtract(1, ordering: .relaxed)
            return logger.warning("chat notice dropped: too many in flight", metadata: ["text": "\(text)"])
        }
        let body = (try? JSONSerialization.data(withJSONObject: ["text": text])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        Task {
            defer { pending.wrappingSubtract(1, ordering: .relaxed) }
            do {
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "application/json")
                let request = try HTTPClient.Request(url: url, method: .POST, headers: headers, body: .string(body))
                let response = try await client.client().wholeResponse(request, deadline: .now() + Self.deadline, maxBody: 1 << 16)
                if !(200..<300).contains(response.status.code) {
                    logger.warning("chat notice refused", metadata: ["status": "\(response.status.code)"])
                }
            } catch {
                logger.warning("chat notice not delivered", metadata: ["error": "\(error)"])
            }
        }
    }
}
