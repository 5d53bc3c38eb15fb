import Foundation

/// `GET /` on the admin listener: the status page, rendered here from a `StatusView` so it reads
/// without a script, then kept current by `StatusPageAssets.script`, which polls
/// `/admin/status` and renders the same markup. Nothing is loaded from elsewhere (the page must
/// work in an air-gapped cluster): styles and script are inline, the icon is empty, charts are SVG.
enum StatusPage {
    static func render(_ status: StatusView) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <link rel="icon" href="data:,">
        <title>Sluice status</title>
        <style>\(StatusPageAssets.style)</style>
        </head>
        <body>
        <header><h1>Sluice</h1><span id="phase" class="badge \(status.ready ? "ok" : "bad")">\(escape(status.phase))\(status.ready ? "" : ", not ready")</span>
        <span id="updated" data-at="\(status.generated_at)">as of \(clock(status.generated_at))</span></header>
        <main>
        <div id="pools">\(status.pools.map(pool).joined())</div>
        <section><h2>Tenants near a limit</h2><div id="tenants">\(tenants(status.tenants))</div></section>
        </main>
        <script>\(StatusPageAssets.script)</script>
        </body>
        </html>
        """
    }

    static func pool(_ pool: StatusView.Pool) -> String {
        var html = "<section class=\"pool\" data-pool=\"\(escape(pool.name))\"><h2>\(escape(pool.name)) <small>\(escape(pool.policy))</small></h2>"
        html += "<div class=\"scroll\"><table><thead><tr><th>Replica</th><th>State</th><th>In flight</th><th>Queue</th><th>Health</th><th>Share</th></tr></thead><tbody>"
        for replica in pool.replicas {
            let state = replica.reason.map { "\(replica.state): \($0)" } ?? replica.state
            let ejected = replica.ejected_for_ms > 0 ? " (\(replica.ejected_for_ms / 1_000) s left)" : ""
            html += "<tr class=\"replica\" data-replica=\"\(escape(replica.id))\" data-state=\"\(escape(replica.state))\">"
            html += "<td>\(escape(replica.id))</td><td>\(escape(state + ejected))</td><td>\(replica.in_flight)</td>"
            html += "<td>\(replica.reported_waiting.map(String.init) ?? "-")</td><td>\(escape(replica.health))</td>"
            html += "<td>\(percent(replica.share)) <small>(\(replica.requests))</small></td></tr>"
        }
        html += "</tbody></table></div>"
        let routing = pool.routing.map { "\(escape($0.reason)) \($0.count)" }.joined(separator: " · ")
        html += "<p><b>Routing</b> \(routing.isEmpty ? "no decisions yet" : routing)</p>"
        if let queue = pool.queue {
            html += "<p><b>Queue</b> \(queue.waiting) waiting; of those that waited, \(queue.dispatched) got a slot; shed: \(queue.full) queue full, "
                + "\(queue.timeout) timed out; \(queue.cancelled) left</p>"
        }
        if let scale = pool.scale {
            html += "<div class=\"scale\"><p><b>Scale</b> <span class=\"decision\">\(scale.desired) desired, \(scale.current) now</span>"
                + " (\(escape(scale.mode))): \(escape(scale.reason))</p>"
            html += "<div class=\"charts\">" + latencyChart(scale) + replicaChart(scale) + "</div></div>"
        }
        return html + "</section>"
    }

    static func tenants(_ tenants: [StatusView.Tenant]) -> String {
        let near = tenants.filter(\.near)
        guard !near.isEmpty else { return "<p>None.</p>" }
        var html = "<div class=\"scroll\"><table><thead><tr><th>Tenant</th><th>In flight</th><th>Left of burst</th></tr></thead><tbody>"
        for tenant in near {
            let limits = tenant.limits.map { "\(escape($0.name)): \($0.remaining) of \($0.burst)" }
                + (tenant.refused_by_shared_store ? ["refused by the shared store"] : [])
            html += "<tr data-tenant=\"\(escape(tenant.name))\"><td>\(escape(tenant.name))</td>"
            html += "<td>\(tenant.in_flight)\(tenant.max_concurrent.map { " of \($0)" } ?? "")</td><td>\(limits.joined(separator: "; "))</td></tr>"
        }
        return html + "</tbody></table></div>"
    }

    /// p95 (solid) against the target (dashed), over the decisions kept.
    static func latencyChart(_ scale: StatusView.Scale) -> String {
        let values = scale.history.map { $0.p95_ms }
        let top = max(scale.target_ms * 1.5, values.compactMap { $0 }.max() ?? 0, 1)
        return chart(
            title: "p95 ms, target \(number(scale.target_ms))", top: top,
            lines: [("p95", values), ("target", scale.history.map { _ in scale.target_ms })])
    }

    /// Desired (solid) against current (dashed) replicas.
    static func replicaChart(_ scale: StatusView.Scale) -> String {
        let top = Double(max(scale.history.map { max($0.desired, $0.current) }.max() ?? 1, 1)) + 1
        return chart(
            title: "replicas, desired and current", top: top,
            lines: [("desired", scale.history.map { Double($0.desired) }), ("current", scale.history.map { Double($0.current) })])
    }

    /// An SVG line chart, 0 to `top`, one point per decision, left to right.
    static func chart(title: String, top: Double, lines: [(String, [Double?])]) -> String {
        let width = 300.0, height = 80.0
        var svg = "<figure><figcaption>\(escape(title)) <small>max \(number(top))</small></figcaption>"
        svg += "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"\(escape(title))\">"
        for (name, values) in lines {
            let step = values.count > 1 ? width / Double(values.count - 1) : 0
            let points = values.enumerated().compactMap { index, value in
                value.map { "\(number(Double(index) * step)),\(number(height - min($0, top) / top * height))" }
            }
            svg += "<polyline class=\"\(name)\" points=\"\(points.joined(separator: " "))\"/>"
        }
        return svg + "</svg></figure>"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    private static func percent(_ share: Double) -> String {
        "\(Int((share * 100).rounded()))%"
    }

    private static func number(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    private static func clock(_ unixSeconds: Double) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: unixSeconds)) + " UTC"
    }
}
