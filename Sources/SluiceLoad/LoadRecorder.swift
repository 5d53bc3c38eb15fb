import Histogram

/// What one event loop of the load generator observed; merged into one at the end. All times are
/// microseconds measured from a request's **intended** send time, so a slow server shows as
/// latency even when the generator itself was held up (no coordinated omission).
struct LoadRecorder: Sendable {
    struct Second: Sendable {
        var sent = 0
        var completed = 0
        var errors = 0
        var latency = Histogram<UInt64>(highestTrackableValue: LoadRecorder.highest, numberOfSignificantValueDigits: .two)
        var ttft = Histogram<UInt64>(highestTrackableValue: LoadRecorder.highest, numberOfSignificantValueDigits: .two)
        var itl = Histogram<UInt64>(highestTrackableValue: LoadRecorder.highest, numberOfSignificantValueDigits: .two)

        mutating func merge(_ other: Second) {
            sent += other.sent
            completed += other.completed
            errors += other.errors
            latency.add(other.latency)
            ttft.add(other.ttft)
            itl.add(other.itl)
        }
    }

    /// One hour in microseconds: anything slower is recorded as this.
    static let highest: UInt64 = 3_600_000_000

    var latency = Histogram<UInt64>(highestTrackableValue: highest, numberOfSignificantValueDigits: .three)
    var ttft = Histogram<UInt64>(highestTrackableValue: highest, numberOfSignificantValueDigits: .three)
    var itl = Histogram<UInt64>(highestTrackableValue: highest, numberOfSignificantValueDigits: .three)
    /// Error answers (status ≥ 400) and failures, kept apart: a fast 503 must not make the
    /// latency of real answers look better.
    var errorLatency = Histogram<UInt64>(highestTrackableValue: highest, numberOfSignificantValueDigits: .three)
    /// How late the generator sent each request (actual send minus intended).
    var lateness = Histogram<UInt64>(highestTrackableValue: highest, numberOfSignificantValueDigits: .two)
    var sent = 0
    var completed = 0
    var statuses: [Int: Int] = [:]
    var errors: [String: Int] = [:]
    var replicas: [String: Int] = [:]
    var workloads: [String: Int] = [:]
    var connectionsOpened = 0
    var waitedForConnection = 0
    var timeline: [Int: Second] = [:]

    static func micros(_ nanoseconds: Int64) -> UInt64 {
        UInt64(max(0, min(Int64(highest), nanoseconds / 1000)))
    }

    mutating func recordSent(second: Int, latenessNanos: Int64, workload: String) {
        sent += 1
        workloads[workload, default: 0] += 1
        lateness.record(Self.micros(latenessNanos))
        timeline[second, default: Second()].sent += 1
    }

    /// A response that ended: its status, end-to-end time and (streams) first-token time.
    mutating func recordCompleted(second: Int, status: Int, latencyNanos: Int64, ttftNanos: Int64?, replica: String?) {
        completed += 1
        statuses[status, default: 0] += 1
        if let replica { replicas[replica, default: 0] += 1 }
        let micros = Self.micros(latencyNanos)
        var bucket = timeline[second, default: Second()]
        bucket.completed += 1
        if status >= 400 {
            bucket.errors += 1
            errorLatency.record(micros)
        } else {
            latency.record(micros)
            bucket.latency.record(micros)
            if let ttftNanos {
                ttft.record(Self.micros(ttftNanos))
                bucket.ttft.record(Self.micros(ttftNanos))
            }
        }
        timeline[second] = bucket
    }

    /// A request that got no complete response (timeout, refused, closed).
    mutating func recordFailed(second: Int, reason: String, latencyNanos: Int64) {
        errors[reason, default: 0] += 1
        timeline[second, default: Second()].errors += 1
        errorLatency.record(Self.micros(latencyNanos))
    }

    /// A gap between two body chunks of a stream, in the second it was intended to be sent.
    mutating func recordInterToken(second: Int, nanoseconds: Int64) {
        let micros = Self.micros(nanoseconds)
        itl.record(micros)
        timeline[second, default: Second()].itl.record(micros)
    }

    mutating func merge(_ other: LoadRecorder) {
        latency.add(other.latency)
        ttft.add(other.ttft)
        itl.add(other.itl)
        errorLatency.add(other.errorLatency)
        lateness.add(other.lateness)
        sent += other.sent
        completed += other.completed
        statuses.merge(other.statuses, uniquingKeysWith: +)
        errors.merge(other.errors, uniquingKeysWith: +)
        replicas.merge(other.replicas, uniquingKeysWith: +)
        workloads.merge(other.workloads, uniquingKeysWith: +)
        connectionsOpened += other.connectionsOpened
        waitedForConnection += other.waitedForConnection
        for (second, bucket) in other.timeline {
            timeline[second, default: Second()].merge(bucket)
        }
    }
}
