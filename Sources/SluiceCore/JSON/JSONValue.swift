/// A JSON document as a tree, for the few bodies the gateway must rewrite (merging batch
/// members, splitting a batch's answer). Objects keep their keys' order and numbers keep their
/// text, so what is not rewritten is written back exactly as it came (an embedding's floats are
/// never re-rounded).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's text as written.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// This object with `key` set to `value` (replaced in place, or appended).
    public func setting(_ key: String, to value: JSONValue) -> JSONValue {
        guard case .object(var members) = self else { return self }
        if let index = members.firstIndex(where: { $0.key == key }) {
            members[index].value = value
        } else {
            members.append((key, value))
        }
        return .object(members)
    }

    /// This object without `key`.
    public func removing(_ key: String) -> JSONValue {
        guard case .object(let members) = self else { return self }
        return .object(members.filter { $0.key != key })
    }

    public var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var array: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    /// An integer number (no fraction or exponent).
    public var int: Int? {
        guard case .number(let text) = self else { return nil }
        return Int(text)
    }

    // MARK: Parsing

    public static func parse(_ bytes: [UInt8]) throws(JSONFieldScanner.Failure) -> JSONValue {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONFieldScanner.Failure) -> JSONValue in
                var cursor = JSONFieldScanner.Cursor(bytes: raw)
                let value = try cursor.tree(depth: 1)
                cursor.skipWhitespace()
                guard cursor.index == raw.count else {
                    throw JSONFieldScanner.Failure(offset: cursor.index, reason: "unexpected data after the JSON value")
                }
                return value
            }
        }
        return try result.get()
    }

    // MARK: Writing

    /// Compact JSON.
    public var serialized: [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let value): out += Array((value ? "true" : "false").utf8)
        case .number(let text): out += Array(text.utf8)
        case .string(let text): Self.writeString(text, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONFieldScanner.Cursor {
    /// Reads one value as a `JSONValue`.
    mutating func tree(depth: Int) throws(JSONFieldScanner.Failure) -> JSONValue {
        guard depth <= JSONFieldScanner.maxDepth else {
            throw JSONFieldScanner.Failure(offset: index, reason: "nesting deeper than \(JSONFieldScanner.maxDepth)")
        }
        skipWhitespace()
        guard let byte = peek() else { throw JSONFieldScanner.Failure(offset: index, reason: "unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"):
            var members: [(key: String, value: JSONValue)] = []
            try object(depth: depth) { (cursor, key) throws(JSONFieldScanner.Failure) in
                members.append((key, try cursor.tree(depth: depth + 1)))
            }
            return .object(members)
        case UInt8(ascii: "["):
            var items: [JSONValue] = []
            try array(depth: depth) { (cursor) throws(JSONFieldScanner.Failure) in
                items.append(try cursor.tree(depth: depth + 1))
            }
            return .array(items)
        case UInt8(ascii: "\""):
            return .string(try string(decode: true)!)
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        default:
            let start = index
            try number()
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
        }
    }
}
