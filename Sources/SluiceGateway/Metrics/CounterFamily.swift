import Synchronization

/// Prometheus counters that the gateway also reads back (the admin API shows them; the
/// swift-prometheus counter cannot be read). Series of one family share a name and help text.
final class CounterFamily: Sendable {
    let name: String
    let help: String
    /// Values are counted in units of 1/`divisor` and rendered divided by it (money in nano-dollars).
    let divisor: Int
    private let series = Mutex<[CounterSeries]>([])

    init(name: String, help: String, divisor: Int = 1) {
        self.name = name
        self.help = help
        self.divisor = divisor
    }

    func makeSeries(labels: [(String, String)]) -> CounterSeries {
        let counter = CounterSeries(labels: labels)
        series.withLock { $0.append(counter) }
        return counter
    }

    func render(into text: inout String) {
        let all = series.withLock { $0 }
        guard !all.isEmpty else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
        for counter in all {
            text += divisor == 1
                ? "\(name){\(counter.labelText)} \(counter.value)\n"
                : "\(name){\(counter.labelText)} \(Double(counter.value) / Double(divisor))\n"
        }
    }
}

final class CounterSeries: Sendable {
    let labelText: String
    private let count = Atomic<Int>(0)

    init(labels: [(String, String)]) {
        labelText = labels.map { "\($0.0)=\"\(PrometheusText.escape($0.1))\"" }.joined(separator: ",")
    }

    var value: Int { count.load(ordering: .relaxed) }

    func increment(by amount: Int = 1) {
        count.wrappingAdd(amount, ordering: .relaxed)
    }
}
