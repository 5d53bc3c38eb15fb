import Foundation
import NIOCore
import NIOHTTP1

/// The fault switches a test or a load run flips at run time, over HTTP.
extension ReplicaHandler {
    /// `GET /admin/faults` shows the faults in force; `POST` changes any of them (JSON, snake_case
    /// keys: `error_rate`, `extra_latency_ms`, `stall`, `close_connections`, `slow_start_s`) and
    /// `{"exit": true}` ends the process.
    func answerFaults(method: HTTPMethod, body: [UInt8], version: HTTPVersion, context: ChannelHandlerContext) {
        if method == .POST {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
                play(.json(status: 400, body: #"{"error":"body must be a JSON object"}"#, delay: .zero), version: version, context: context)
                return
            }
            let known: Set = ["error_rate", "extra_latency_ms", "stall", "close_connections", "slow_start_s", "exit"]
            if let unknown = object.keys.first(where: { !known.contains($0) }) {
                play(.json(status: 400, body: "{\"error\":\(quoted("unknown key \(unknown)"))}", delay: .zero), version: version, context: context)
                return
            }
            var faults = server.faults
            if let value = object["error_rate"] as? Double { faults.errorRate = min(1, max(0, value)) }
            if let value = object["extra_latency_ms"] as? Double { faults.extraLatency = .milliseconds(max(0, value)) }
            if let value = object["stall"] as? Bool { faults.stall = value }
            if let value = object["close_connections"] as? Bool { faults.closeConnections = value }
            if let value = object["slow_start_s"] as? Double { faults.slowStart = .milliseconds(max(0, value) * 1000) }
            server.faults = faults
            if object["exit"] as? Bool == true {
                let server = self.server
                context.eventLoop.scheduleTask(in: .milliseconds(50)) { server.onExit() }
            }
        } else if method != .GET {
            play(.json(status: 405, body: #"{"error":"GET or POST"}"#, delay: .zero), version: version, context: context)
            return
        }
        let faults = server.faults
        let text = "{\"error_rate\":\(faults.errorRate),\"extra_latency_ms\":\(Double(faults.extraLatency.nanoseconds) / 1e6),"
            + "\"stall\":\(faults.stall),\"close_connections\":\(faults.closeConnections),"
            + "\"slow_start_s\":\(Double(faults.slowStart.nanoseconds) / 1e9)}"
        play(.json(status: 200, body: text, delay: .zero), version: version, context: context)
    }
}
