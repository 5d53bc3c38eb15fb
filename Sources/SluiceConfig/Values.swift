import SluiceCore

/// Parsers for the scalar forms the config accepts. Each returns nil on bad input; the caller
/// turns that into an issue with a key path and line.
public enum ConfigValues {
    /// `host:port` or `[v6]:port`, port 1-65535 (0 allowed only when `allowZeroPort`).
    public static func hostPort(_ text: String, allowZeroPort: Bool = false) -> ReplicaID? {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }),
              !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
              portText.count <= 5, let port = Int(portText)
        else { return nil }
        guard port <= 65535, port >= (allowZeroPort ? 0 : 1) else { return nil }
        return ReplicaID(host: String(host), port: port)
    }

    /// `250ms`, `2s`, `1.5s`, `5m`, `1h`, `100us`. A unit is required: a bare number is ambiguous.
    public static func duration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }),
                  let value = Double(number), value.isFinite, value >= 0
            else { return nil }
            let nanos = (value * scale * 1e9).rounded()
            guard nanos < 1e18 else { return nil }
            return .nanoseconds(Int64(nanos))
        }
        return nil
    }

    /// A byte count: an integer, or a number with `KiB`/`MiB`/`GiB` (or `KB`/`MB`/`GB`, decimal).
    public static func byteSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let value = Int(text.dropLast(suffix.count).trimmingSpaces()), value >= 0 else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: scale)
            return overflow ? nil : product
        }
        guard let value = Int(text), value >= 0 else { return nil }
        return value
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var result = self
        while result.first == " " { result = result.dropFirst() }
        while result.last == " " { result = result.dropLast() }
        return result
    }
}

extension Duration {
    /// Whole nanoseconds, saturating; convenient for monotonic arithmetic in `UInt64`.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : scaled &+ attoseconds / 1_000_000_000
    }
}
