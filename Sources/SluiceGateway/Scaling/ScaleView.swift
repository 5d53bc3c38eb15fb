import Foundation
import SluiceConfig
import SluiceCore

/// `GET /admin/scale`: each scaled pool's latest decision. KEDA's `metrics-api` scaler reads it
/// as is: `valueLocation: pools.<pool>.desired`.
enum ScaleView {
    static func document(_ gateway: Gateway) -> String {
        let entries = gateway.runtime.pools.compactMap { pool -> String? in
            guard let published = pool.scaling?.latest else { return nil }
            return "\(jsonString(pool.name)):\(json(published))"
        }
        return "{\"pools\":{\(entries.joined(separator: ","))}}"
    }

    /// One decision as a JSON object (also the webhook's `json` body, with the pool's name).
    static func json(_ published: PoolScaling.Published) -> String {
        let decision = published.decision
        var fields: [String] = [
            "\"pool\":\(jsonString(published.pool))",
            "\"current\":\(decision.current)",
            "\"desired\":\(decision.desired)",
            "\"mode\":\(jsonString(decision.mode.rawValue))",
            "\"signal\":\(jsonString(published.signal.rawValue))",
            "\"target_seconds\":\(seconds(decision.target))",
            "\"stable_p95_seconds\":\(decision.stableP95.map(seconds) ?? "null")",
            "\"panic_p95_seconds\":\(decision.panicP95.map(seconds) ?? "null")",
            "\"reason\":\(jsonString(decision.reason))",
            "\"at\":\(jsonString(iso8601(published.at)))",
            "\"arrival_rate\":\(rounded(published.arrivalRate))",
            "\"in_flight\":\(published.inFlight)",
            "\"queued\":\(published.queued)",
        ]
        if let capacity = decision.capacityPerReplica { fields.append("\"capacity_per_replica\":\(rounded(capacity))") }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// A decision stored by `json` (the shared view's), read back.
    static func published(fromJSON text: String, signal: ScalingSignal) -> PoolScaling.Published? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let pool = object["pool"] as? String, let current = object["current"] as? Int, let desired = object["desired"] as? Int,
              let modeText = object["mode"] as? String, let mode = ScaleAdvisor.Mode(rawValue: modeText),
              let reason = object["reason"] as? String, let target = object["target_seconds"] as? Double
        else { return nil }
        func nanos(_ key: String) -> UInt64? { (object[key] as? Double).map { UInt64(($0 * 1e9).rounded()) } }
        let decision = ScaleAdvisor.Decision(
            current: current, desired: desired, stableP95: nanos("stable_p95_seconds"), panicP95: nanos("panic_p95_seconds"),
            target: UInt64((target * 1e9).rounded()), mode: mode, reason: reason, at: 0,
            capacityPerReplica: object["capacity_per_replica"] as? Double)
        let at = (object["at"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) } ?? Date()
        return PoolScaling.Published(
            pool: pool, signal: signal, decision: decision, arrivalRate: object["arrival_rate"] as? Double ?? 0,
            inFlight: object["in_flight"] as? Int ?? 0, queued: object["queued"] as? Int ?? 0, at: at)
    }

    static func seconds(_ nanoseconds: UInt64) -> String {
        rounded(Double(nanoseconds) / 1e9, places: 4)
    }

    static func rounded(_ value: Double, places: Int = 2) -> String {
        guard value.isFinite else { return "0" }
        let scale = pow(10, Double(places))
        let text = String((value * scale).rounded() / scale)
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }

    static func iso8601(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}
