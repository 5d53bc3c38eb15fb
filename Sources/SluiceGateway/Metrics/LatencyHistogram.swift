import Synchronization

/// A Prometheus histogram whose `record` is three relaxed atomic adds and no lock (the
/// swift-prometheus histogram takes a lock per sample, twice per proxied request here).
/// Series of one family share a name and help text and are rendered together.
final class LatencyHistogramFamily: Sendable {
    let name: String
    let help: String
    /// Upper bounds in nanoseconds.
    let bounds: [Int64]
    private let series = Mutex<[LatencyHistogram]>([])

    init(name: String, help: String, bounds: [Duration]) {
        self.name = name
        self.help = help
        self.bounds = bounds.map { Int64($0.components.seconds) * 1_000_000_000 + $0.components.attoseconds / 1_000_000_000 }
    }

    func makeSeries(labels: [(String, String)]) -> LatencyHistogram {
        let histogram = LatencyHistogram(family: self, labels: labels)
        series.withLock { $0.append(histogram) }
        return histogram
    }

    func render(into text: inout String) {
        let all = series.withLock { $0 }
        guard !all.isEmpty else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for histogram in all { histogram.render(into: &text) }
    }
}

final class LatencyHistogram: Sendable {
    let family: LatencyHistogramFamily
    private let labelText: String
    /// One per bound plus +Inf; not cumulative (made cumulative when rendered).
    private let buckets: AtomicArray<Int>
    private let sumNanos = Atomic<Int>(0)

    init(family: LatencyHistogramFamily, labels: [(String, String)]) {
        self.family = family
        self.labelText = labels.map { "\($0.0)=\"\(PrometheusText.escape($0.1))\"" }.joined(separator: ",")
        self.buckets = AtomicArray(repeating: 0, count: family.bounds.count + 1)
    }

    func record(nanoseconds: Int64) {
        let bounds = family.bounds
        var index = 0
        while index < bounds.count, nanoseconds > bounds[index] { index += 1 }
        buckets[index].wrappingAdd(1, ordering: .relaxed)
        sumNanos.wrappingAdd(Int(nanoseconds), ordering: .relaxed)
    }

    /// Samples recorded.
    var count: Int {
        (0...family.bounds.count).reduce(0) { $0 + buckets[$1].load(ordering: .relaxed) }
    }

    /// The `q` quantile in seconds, interpolated within its bucket as Prometheus's
    /// `histogram_quantile` does (nil without samples; the last finite bound past it).
    func quantile(_ q: Double) -> Double? {
        let counts = (0...family.bounds.count).map { buckets[$0].load(ordering: .relaxed) }
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = q * Double(total)
        var below = 0
        for (index, bound) in family.bounds.enumerated() {
            let upTo = below + counts[index]
            if Double(upTo) >= rank, counts[index] > 0 {
                let lower = index == 0 ? 0 : Double(family.bounds[index - 1])
                let fraction = (rank - Double(below)) / Double(counts[index])
                return (lower + (Double(bound) - lower) * fraction) / 1e9
            }
            below = upTo
        }
        return Double(family.bounds.last ?? 0) / 1e9
    }

    func render(into text: inout String) {
        let name = family.name
        let separator = labelText.isEmpty ? "" : ","
        var cumulative = 0
        for (index, bound) in family.bounds.enumerated() {
            cumulative += buckets[index].load(ordering: .relaxed)
            text += "\(name)_bucket{\(labelText)\(separator)le=\"\(Double(bound) / 1e9)\"} \(cumulative)\n"
        }
        cumulative += buckets[family.bounds.count].load(ordering: .relaxed)
        text += "\(name)_bucket{\(labelText)\(separator)le=\"+Inf\"} \(cumulative)\n"
        let braces = labelText.isEmpty ? "" : "{\(labelText)}"
        text += "\(name)_sum\(braces) \(Double(sumNanos.load(ordering: .relaxed)) / 1e9)\n"
        text += "\(name)_count\(braces) \(cumulative)\n"
    }
}

/// Label values in the Prometheus text format.
enum PrometheusText {
    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
