/// A request path pattern: exact (`/v1/chat/completions`) or prefix (`/v2/*`, `/*`).
/// The query string is not part of the match.
public struct PathPattern: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case exact
        case prefix
    }

    public let kind: Kind
    /// For `.prefix`, the text before the `*` (it ends with `/`).
    public let text: String

    /// Nil when the text is not a valid pattern: it must start with `/`, and a `*` may only be the
    /// last character, right after a `/`.
    public init?(_ pattern: String) {
        guard pattern.hasPrefix("/") else { return nil }
        if pattern.hasSuffix("/*") {
            let stem = String(pattern.dropLast())
            guard !stem.contains("*") else { return nil }
            kind = .prefix
            text = stem
        } else {
            guard !pattern.contains("*") else { return nil }
            kind = .exact
            text = pattern
        }
    }

    public var description: String { kind == .prefix ? text + "*" : text }

    /// `path` is the request target without its query string.
    public func matches(_ path: Substring) -> Bool {
        switch kind {
        case .exact:
            return path == text
        case .prefix:
            // "/v2/*" matches "/v2/..." and "/v2" itself.
            return path.hasPrefix(text) || path == text.dropLast()
        }
    }
}
