/// Merging OpenAI `/v1/embeddings` requests into one and splitting the answer back (issue 7).
///
/// Requests join when everything but `input` is identical (model, `encoding_format`,
/// `dimensions`, `user`, anything else) and their inputs are of one kind: texts (a string
/// counts as a list of one) or token arrays (a list of ints counts as one token array). The
/// merged request's `input` is the members' inputs in order; the answer's `data` items are
/// split back by `index` and renumbered from 0 for each member, whatever their encoding
/// (`float` lists and `base64` strings pass through as they came); `usage` is split in
/// proportion to each member's number of inputs (largest remainders first, so the parts add up
/// to the whole).
public enum EmbeddingsBatch {
    public enum InputKind: String, Sendable, Equatable {
        case text, tokens
    }

    /// Why a request is sent alone (or refused on its own, before it could join a batch).
    public enum Refusal: Error, Equatable, Sendable {
        case notAnObject
        case noInput
        case emptyInput
        /// Not a string, a list of strings, a list of ints or a list of lists of ints.
        case unsupportedInput
    }

    /// A request ready to join a batch.
    public struct Member: Sendable, Equatable {
        public let body: JSONValue
        public let inputs: [JSONValue]
        public let kind: InputKind
        /// Equal for requests that can be merged.
        public let joinKey: [UInt8]
    }

    /// Where one member's inputs sit in a merged batch.
    public struct Span: Sendable, Equatable {
        public var offset: Int
        public var count: Int

        public init(offset: Int, count: Int) {
            self.offset = offset
            self.count = count
        }
    }

    public static func member(_ body: JSONValue) throws(Refusal) -> Member {
        guard case .object = body else { throw .notAnObject }
        guard let input = body["input"] else { throw .noInput }
        let inputs: [JSONValue]
        let kind: InputKind
        switch input {
        case .string:
            inputs = [input]
            kind = .text
        case .array(let items):
            guard !items.isEmpty else { throw .emptyInput }
            if items.allSatisfy({ $0.string != nil }) {
                inputs = items
                kind = .text
            } else if items.allSatisfy({ $0.int != nil }) {
                inputs = [input]
                kind = .tokens
            } else if items.allSatisfy({ item in item.array.map { !$0.isEmpty && $0.allSatisfy { $0.int != nil } } ?? false }) {
                inputs = items
                kind = .tokens
            } else {
                throw .unsupportedInput
            }
        default:
            throw .unsupportedInput
        }
        var key = Array(kind.rawValue.utf8)
        key.append(0)
        body.removing("input").write(into: &key)
        return Member(body: body, inputs: inputs, kind: kind, joinKey: key)
    }

    /// One request for all of `members` (which share a join key), and where each one's inputs are.
    public static func merge(_ members: [Member]) -> (body: JSONValue, spans: [Span]) {
        precondition(!members.isEmpty && members.allSatisfy { $0.joinKey == members[0].joinKey })
        var inputs: [JSONValue] = []
        var spans: [Span] = []
        for member in members {
            spans.append(Span(offset: inputs.count, count: member.inputs.count))
            inputs += member.inputs
        }
        return (members[0].body.setting("input", to: .array(inputs)), spans)
    }

    /// Each member's answer from the batch's; nil when the answer is not an embeddings list with
    /// one item per input (the members are then answered with an error, or retried alone).
    public static func split(_ answer: JSONValue, spans: [Span]) -> [JSONValue]? {
        guard let items = answer["data"]?.array else { return nil }
        let total = spans.reduce(0) { $0 + $1.count }
        var byIndex = [JSONValue?](repeating: nil, count: total)
        for item in items {
            guard let index = item["index"]?.int, index >= 0, index < total, byIndex[index] == nil else { return nil }
            byIndex[index] = item
        }
        guard byIndex.allSatisfy({ $0 != nil }) else { return nil }
        let usages = splitUsage(answer["usage"], spans: spans)
        return spans.enumerated().map { position, span in
            let data = (0..<span.count).map { byIndex[span.offset + $0]!.setting("index", to: .number(String($0))) }
            var part = answer.setting("data", to: .array(data))
            if let usage = usages?[position] { part = part.setting("usage", to: usage) }
            return part
        }
    }

    /// `usage` in proportion to each span's inputs: every integer field is divided, largest
    /// remainders first, so the parts add up to the batch's.
    static func splitUsage(_ usage: JSONValue?, spans: [Span]) -> [JSONValue]? {
        guard case .object(let fields)? = usage else { return nil }
        let total = spans.reduce(0) { $0 + $1.count }
        guard total > 0 else { return nil }
        var parts = spans.map { _ in [(key: String, value: JSONValue)]() }
        for field in fields {
            guard let whole = field.value.int, whole >= 0 else {
                for index in parts.indices { parts[index].append(field) }
                continue
            }
            let shares = proportional(whole, weights: spans.map(\.count))
            for index in parts.indices { parts[index].append((field.key, .number(String(shares[index])))) }
        }
        return parts.map { .object($0) }
    }

    /// `whole` divided in proportion to `weights`, in integers that add up to `whole`.
    public static func proportional(_ whole: Int, weights: [Int]) -> [Int] {
        let total = weights.reduce(0, +)
        guard total > 0 else { return weights.map { _ in 0 } }
        var shares = weights.map { whole * $0 / total }
        let remainders = weights.enumerated().map { (index: $0.offset, rest: whole * $0.element % total) }
        var left = whole - shares.reduce(0, +)
        for entry in remainders.sorted(by: { ($0.rest, -$0.index) > ($1.rest, -$1.index) }) where left > 0 {
            shares[entry.index] += 1
            left -= 1
        }
        return shares
    }
}
