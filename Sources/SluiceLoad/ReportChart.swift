import Foundation
/// The report's timeline as an SVG a browser shows: latency p50/p95/p99 per second on top,
/// requests completed and errors per second below.
public enum ReportChart {
    public static func svg(_ report: LoadReport) -> String {
        let width = 900.0
        let samples = report.gateway ?? []
        let scaled = samples.contains { $0.pools.values.contains { $0.targetMs != nil } }
        let height = samples.isEmpty ? 560.0 : scaled ? 960.0 : 760.0
        let left = 70.0
        let right = 20.0
        let plotWidth = width - left - right
        let points = report.timeline
        let seconds = Double(max(1, (points.map(\.second).max() ?? 0) + 1))
        func x(_ second: Int) -> Double { left + (Double(second) + 0.5) / seconds * plotWidth }

        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(left)\" y=\"20\" font-size=\"14\">\(escape(report.scenario)) → \(escape(report.target)): \(report.requests.sent) sent, \(String(format2(report.throughputRps))) req/s, p99 \(format2(report.latencyMs.p99)) ms, \(report.requests.failed + report.requests.errorResponses) errors</text>\n"

        // Latency panel.
        let top1 = 40.0
        let height1 = 280.0
        let latencyMax = max(1, points.map(\.p99Ms).max() ?? 1) * 1.1
        svg += panel(top: top1, height: height1, left: left, width: plotWidth, yMax: latencyMax, label: "latency ms", seconds: seconds)
        for (series, color, value) in [("p50", "#2b8a3e", \LoadReport.Point.p50Ms), ("p95", "#e67700", \LoadReport.Point.p95Ms), ("p99", "#c92a2a", \LoadReport.Point.p99Ms)] {
            let path = points.filter { $0.completed + $0.errors > 0 }.map { point in
                "\(x(point.second)),\(top1 + height1 - point[keyPath: value] / latencyMax * height1)"
            }
            if !path.isEmpty {
                svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path.joined(separator: " "))\"/>\n"
            }
            svg += "<text x=\"\(left + plotWidth - 140 + Double(["p50", "p95", "p99"].firstIndex(of: series)!) * 45)\" y=\"\(top1 + 15)\" fill=\"\(color)\">\(series)</text>\n"
        }

        // Throughput and errors panel.
        let top2 = 360.0
        let height2 = 160.0
        let rateMax = Double(max(1, points.map { max($0.completed, $0.sent) }.max() ?? 1)) * 1.1
        svg += panel(top: top2, height: height2, left: left, width: plotWidth, yMax: rateMax, label: "per second", seconds: seconds)
        let barWidth = max(1, plotWidth / seconds * 0.8)
        for point in points {
            let completedHeight = Double(point.completed) / rateMax * height2
            svg += "<rect x=\"\(x(point.second) - barWidth / 2)\" y=\"\(top2 + height2 - completedHeight)\" width=\"\(barWidth)\" height=\"\(completedHeight)\" fill=\"#4dabf7\"/>\n"
            if point.errors > 0 {
                let errorHeight = max(2, Double(point.errors) / rateMax * height2)
                svg += "<rect x=\"\(x(point.second) - barWidth / 2)\" y=\"\(top2 + height2 - errorHeight)\" width=\"\(barWidth)\" height=\"\(errorHeight)\" fill=\"#c92a2a\"/>\n"
            }
        }
        let sentPath = points.map { "\(x($0.second)),\(top2 + height2 - Double($0.sent) / rateMax * height2)" }
        if !sentPath.isEmpty {
            svg += "<polyline fill=\"none\" stroke=\"#343a40\" stroke-dasharray=\"4 3\" points=\"\(sentPath.joined(separator: " "))\"/>\n"
        }
        svg += "<text x=\"\(left + plotWidth - 230)\" y=\"\(top2 + 15)\"><tspan fill=\"#4dabf7\">completed</tspan>  <tspan fill=\"#c92a2a\">errors</tspan>  <tspan fill=\"#343a40\">- - sent</tspan></text>\n"
        if !samples.isEmpty {
            // Replicas in rotation per pool, from the gateway's /readyz.
            let top3 = 560.0
            let height3 = 150.0
            let pools = Set(samples.flatMap { $0.pools.keys }).sorted()
            let most = Double(max(1, samples.flatMap { $0.pools.values.map { max($0.replicas, $0.desired ?? 0) } }.max() ?? 1)) + 1
            svg += panel(top: top3, height: height3, left: left, width: plotWidth, yMax: most, label: "replicas in rotation", seconds: seconds)
            let colors = ["#5f3dc4", "#0b7285", "#a61e4d", "#5c940d", "#e8590c"]
            for (index, pool) in pools.enumerated() {
                let color = colors[index % colors.count]
                let path = samples.compactMap { sample in
                    sample.pools[pool].map { "\(left + Double(sample.second) / seconds * plotWidth),\(top3 + height3 - Double($0.available) / most * height3 - Double(index))" }
                }
                if !path.isEmpty {
                    svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path.joined(separator: " "))\"/>\n"
                }
                // The scale advisor's desired count, dashed.
                let desired = samples.compactMap { sample in
                    sample.pools[pool]?.desired.map { "\(left + Double(sample.second) / seconds * plotWidth),\(top3 + height3 - Double($0) / most * height3 - Double(index))" }
                }
                if !desired.isEmpty {
                    svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-dasharray=\"5 3\" points=\"\(desired.joined(separator: " "))\"/>\n"
                }
                svg += "<text x=\"\(left + 10 + Double(index) * 160)\" y=\"\(top3 + 15)\" fill=\"\(color)\">pool \(escape(pool))\(desired.isEmpty ? "" : " (- - desired)")</text>\n"
            }
        }
        if scaled {
            // Each scaled pool's p95 (the gateway's stable window, on its scaling signal) and target.
            let top4 = 760.0
            let height4 = 150.0
            let pools = Set(samples.flatMap { sample in sample.pools.filter { $0.value.targetMs != nil }.keys }).sorted()
            let values = samples.flatMap { $0.pools.values.flatMap { [$0.p95Ms, $0.targetMs].compactMap { $0 } } }
            let most = max(1, values.max() ?? 1) * 1.1
            svg += panel(top: top4, height: height4, left: left, width: plotWidth, yMax: most, label: "scaling p95 ms", seconds: seconds)
            let colors = ["#5f3dc4", "#0b7285", "#a61e4d", "#5c940d", "#e8590c"]
            for (index, pool) in pools.enumerated() {
                let color = colors[index % colors.count]
                func line(_ value: (LoadReport.PoolSample) -> Double?) -> [String] {
                    samples.compactMap { sample in
                        sample.pools[pool].flatMap(value).map { "\(left + Double(sample.second) / seconds * plotWidth),\(top4 + height4 - $0 / most * height4)" }
                    }
                }
                let p95 = line { $0.p95Ms }
                if !p95.isEmpty { svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(p95.joined(separator: " "))\"/>\n" }
                let target = line { $0.targetMs }
                if !target.isEmpty { svg += "<polyline fill=\"none\" stroke=\"#343a40\" stroke-dasharray=\"5 3\" points=\"\(target.joined(separator: " "))\"/>\n" }
                svg += "<text x=\"\(left + 10 + Double(index) * 200)\" y=\"\(top4 + 15)\" fill=\"\(color)\">pool \(escape(pool)) p95 (- - target)</text>\n"
            }
        }
        svg += "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\">seconds since start</text>\n"
        svg += "</svg>\n"
        return svg
    }

    private static func panel(top: Double, height: Double, left: Double, width: Double, yMax: Double, label: String, seconds: Double) -> String {
        var out = "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width)\" height=\"\(height)\" fill=\"none\" stroke=\"#adb5bd\"/>\n"
        for tick in 0...4 {
            let value = yMax * Double(tick) / 4
            let y = top + height - height * Double(tick) / 4
            out += "<line x1=\"\(left)\" x2=\"\(left + width)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#f1f3f5\"/>\n"
            let label = value >= 10 ? String(Int(value.rounded())) : format2(value)
            out += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(label)</text>\n"
        }
        let step = max(1, Int((seconds / 10).rounded(.up)))
        for second in stride(from: 0, to: Int(seconds), by: step) {
            let x = left + Double(second) / seconds * width
            out += "<text x=\"\(x)\" y=\"\(top + height + 14)\" text-anchor=\"middle\">\(second)</text>\n"
        }
        out += "<text x=\"14\" y=\"\(top + height / 2)\" transform=\"rotate(-90 14 \(top + height / 2))\" text-anchor=\"middle\">\(label)</text>\n"
        return out
    }

    static func format2(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
