/// The fields that tell a client where it stands against a limit, in the two vocabularies
/// clients read: OpenAI's (`x-ratelimit-*-requests`, resets as durations like `1.2s`, which the
/// `openai` SDKs parse) and the IETF draft's (`RateLimit-Policy` / `RateLimit`,
/// draft-ietf-httpapi-ratelimit-headers), plus `Retry-After` on a refusal.
public enum RateLimitHeaders {
    /// One limit's state after a decision.
    public struct Window: Sendable, Equatable {
        /// The policy name in the IETF fields, and the suffix of OpenAI's (`requests`).
        public var name: String
        public var limit: Int
        public var remaining: Int
        /// Nanoseconds until the limit is full again.
        public var resetAfter: UInt64
        /// The window the limit is stated over, in seconds (60 for per-minute limits).
        public var windowSeconds: Int

        public init(name: String, limit: Int, remaining: Int, resetAfter: UInt64, windowSeconds: Int = 60) {
            self.name = name
            self.limit = limit
            self.remaining = remaining
            self.resetAfter = resetAfter
            self.windowSeconds = windowSeconds
        }
    }

    /// The fields for `windows`, and `Retry-After` when `retryAfter` (nanoseconds) is given.
    public static func fields(_ windows: [Window], retryAfter: UInt64? = nil) -> [(String, String)] {
        var fields: [(String, String)] = []
        for window in windows {
            fields.append(("x-ratelimit-limit-\(window.name)", String(window.limit)))
            fields.append(("x-ratelimit-remaining-\(window.name)", String(max(0, window.remaining))))
            fields.append(("x-ratelimit-reset-\(window.name)", duration(window.resetAfter)))
        }
        if !windows.isEmpty {
            fields.append(("ratelimit-policy", windows.map { "\"\($0.name)\";q=\($0.limit);w=\($0.windowSeconds)" }.joined(separator: ", ")))
            fields.append(("ratelimit", windows.map { "\"\($0.name)\";r=\(max(0, $0.remaining));t=\(seconds($0.resetAfter))" }.joined(separator: ", ")))
        }
        if let retryAfter { fields.append(("retry-after", String(max(1, seconds(retryAfter))))) }
        return fields
    }

    /// Whole seconds, rounded up (a client that waits this long is not refused again for time).
    public static func seconds(_ nanoseconds: UInt64) -> Int {
        Int((nanoseconds + 999_999_999) / 1_000_000_000)
    }

    /// OpenAI's duration style: `250ms`, `1.2s`, `6m0s`; rounded up so waiting that long is enough.
    public static func duration(_ nanoseconds: UInt64) -> String {
        if nanoseconds < 1_000_000_000 {
            return "\((nanoseconds + 999_999) / 1_000_000)ms"
        }
        let tenths = (nanoseconds + 99_999_999) / 100_000_000
        if tenths < 600 {
            return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
        }
        let whole = seconds(nanoseconds)
        return "\(whole / 60)m\(whole % 60)s"
    }
}
