/// The status page's inline style and script. The script polls `/admin/status` every two
/// seconds and renders the same markup as `StatusPage` (the two must change together; the
/// browser test in `Tests/python/status_page_check.py` reads that markup).
enum StatusPageAssets {
    static let style = """
        :root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--line:#8884}
        body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:0 12px 24px;max-width:1100px}
        header{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:baseline;padding:8px 0;border-bottom:1px solid var(--line)}
        h1{font-size:20px;margin:0}h2{font-size:17px;margin:18px 0 6px}small{opacity:.7}
        .badge{padding:1px 8px;border-radius:10px;color:#fff}.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
        .scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;min-width:420px}
        th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);white-space:nowrap}
        tr[data-state=ejected] td,tr[data-state=unhealthy] td{color:var(--bad)}
        tr[data-state=draining] td,tr[data-state=pending] td{color:var(--warn)}
        p{margin:6px 0}.charts{display:flex;flex-wrap:wrap;gap:12px}
        figure{margin:0;flex:1 1 260px}figcaption{font-size:13px}
        svg{width:100%;height:90px;border:1px solid var(--line);border-radius:4px}
        polyline{fill:none;stroke-width:2;vector-effect:non-scaling-stroke}
        .p95,.desired{stroke:#0969da}.target,.current{stroke:#bf3989;stroke-dasharray:4 3}
        """

    static let script = #"""
        "use strict";
        const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
        const num = (value) => value.toFixed(1);
        const percent = (share) => Math.round(share * 100) + "%";

        function chart(title, top, lines) {
          const width = 300, height = 80;
          let svg = `<figure><figcaption>${esc(title)} <small>max ${num(top)}</small></figcaption>`;
          svg += `<svg viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" role="img" aria-label="${esc(title)}">`;
          for (const [name, values] of lines) {
            const step = values.length > 1 ? width / (values.length - 1) : 0;
            const points = [];
            values.forEach((value, index) => {
              if (value !== null && value !== undefined) points.push(`${num(index * step)},${num(height - Math.min(value, top) / top * height)}`);
            });
            svg += `<polyline class="${name}" points="${points.join(" ")}"/>`;
          }
          return svg + "</svg></figure>";
        }

        function latencyChart(scale) {
          const values = scale.history.map((d) => d.p95_ms ?? null);
          const top = Math.max(scale.target_ms * 1.5, ...values.filter((v) => v !== null), 1);
          return chart(`p95 ms, target ${num(scale.target_ms)}`, top,
            [["p95", values], ["target", scale.history.map(() => scale.target_ms)]]);
        }

        function replicaChart(scale) {
          const top = Math.max(1, ...scale.history.map((d) => Math.max(d.desired, d.current))) + 1;
          return chart("replicas, desired and current", top,
            [["desired", scale.history.map((d) => d.desired)], ["current", scale.history.map((d) => d.current)]]);
        }

        // Routing decisions at the last poll, by pool and reason: the page shows what each
        // reason gained since (the recent decisions), beside the totals.
        let lastRouting = null;
        let routingNow = {};

        function pool(p) {
          let html = `<section class="pool" data-pool="${esc(p.name)}"><h2>${esc(p.name)} <small>${esc(p.policy)}</small></h2>`;
          html += "<div class=\"scroll\"><table><thead><tr><th>Replica</th><th>State</th><th>In flight</th><th>Queue</th><th>Health</th><th>Share</th></tr></thead><tbody>";
          for (const r of p.replicas) {
            const state = r.reason ? `${r.state}: ${r.reason}` : r.state;
            const ejected = r.ejected_for_ms > 0 ? ` (${Math.floor(r.ejected_for_ms / 1000)} s left)` : "";
            html += `<tr class="replica" data-replica="${esc(r.id)}" data-state="${esc(r.state)}">`;
            html += `<td>${esc(r.id)}</td><td>${esc(state + ejected)}</td><td>${r.in_flight}</td>`;
            html += `<td>${r.reported_waiting ?? "-"}</td><td>${esc(r.health)}</td>`;
            html += `<td>${percent(r.share)} <small>(${r.requests})</small></td></tr>`;
          }
          html += "</tbody></table></div>";
          const routing = p.routing.map((d) => {
            const key = p.name + " " + d.reason;
            routingNow[key] = d.count;
            const gained = lastRouting ? d.count - (lastRouting[key] ?? 0) : null;
            return `${esc(d.reason)} ${d.count}` + (gained === null ? "" : ` <small>(+${gained})</small>`);
          }).join(" · ");
          html += `<p><b>Routing</b> ${routing || "no decisions yet"}</p>`;
          if (p.queue) {
            const q = p.queue;
            html += `<p><b>Queue</b> ${q.waiting} waiting; of those that waited, ${q.dispatched} got a slot; shed: ${q.full} queue full, ${q.timeout} timed out; ${q.cancelled} left</p>`;
          }
          if (p.scale) {
            const s = p.scale;
            html += `<div class="scale"><p><b>Scale</b> <span class="decision">${s.desired} desired, ${s.current} now</span> (${esc(s.mode)}): ${esc(s.reason)}</p>`;
            html += `<div class="charts">${latencyChart(s)}${replicaChart(s)}</div></div>`;
          }
          return html + "</section>";
        }

        function tenants(list) {
          const near = list.filter((t) => t.near);
          if (near.length === 0) return "<p>None.</p>";
          let html = "<div class=\"scroll\"><table><thead><tr><th>Tenant</th><th>In flight</th><th>Left of burst</th></tr></thead><tbody>";
          for (const t of near) {
            const limits = t.limits.map((l) => `${esc(l.name)}: ${l.remaining} of ${l.burst}`);
            if (t.refused_by_shared_store) limits.push("refused by the shared store");
            html += `<tr data-tenant="${esc(t.name)}"><td>${esc(t.name)}</td>`;
            html += `<td>${t.in_flight}${t.max_concurrent != null ? " of " + t.max_concurrent : ""}</td><td>${limits.join("; ")}</td></tr>`;
          }
          return html + "</tbody></table></div>";
        }

        async function refresh() {
          const phase = document.getElementById("phase");
          try {
            const response = await fetch("/admin/status", {cache: "no-store", credentials: "same-origin"});
            if (!response.ok) throw new Error(`status ${response.status}`);
            const status = await response.json();
            routingNow = {};
            document.getElementById("pools").innerHTML = status.pools.map(pool).join("");
            lastRouting = routingNow;
            document.getElementById("tenants").innerHTML = tenants(status.tenants);
            phase.className = "badge " + (status.ready ? "ok" : "bad");
            phase.textContent = status.phase + (status.ready ? "" : ", not ready");
            const updated = document.getElementById("updated");
            updated.dataset.at = status.generated_at;
            updated.textContent = "as of " + new Date(status.generated_at * 1000).toISOString().slice(11, 19) + " UTC";
          } catch (error) {
            phase.className = "badge bad";
            phase.textContent = "unreachable: " + error.message;
          }
        }
        setInterval(refresh, 2000);
        """#
}
