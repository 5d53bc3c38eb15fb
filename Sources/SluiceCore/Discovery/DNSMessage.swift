/// A DNS message (RFC 1035 §4) as far as replica discovery needs one: a query for A, AAAA or SRV,
/// and the A, AAAA, SRV and CNAME records of an answer. Pure: bytes in, values out; the socket,
/// the query id and the timeout belong to the caller (`DNSResolver` in the gateway).
///
/// The decoder reads packets from the network, so every malformed input is a thrown
/// `DNSMessageError`, never a trap: lengths are checked before every read, compression pointers
/// may only point backwards (so they cannot loop) and a name may follow at most
/// `DNSReader.maxPointers` of them (so a chain of pointers cannot make decoding quadratic).
public struct DNSMessage: Hashable, Sendable {
    public var header: DNSHeader
    public var questions: [DNSQuestion]
    public var answers: [DNSRecord]
    /// The additional section: a server puts the addresses of SRV targets here ("glue").
    public var additionals: [DNSRecord]

    public init(header: DNSHeader, questions: [DNSQuestion], answers: [DNSRecord] = [], additionals: [DNSRecord] = []) {
        (self.header, self.questions, self.answers, self.additionals) = (header, questions, answers, additionals)
    }
}

/// The record types a query may ask for.
public enum DNSQueryType: UInt16, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case a = 1
    case aaaa = 28
    case srv = 33

    public var description: String { self == .a ? "A" : self == .aaaa ? "AAAA" : "SRV" }
}

/// The fixed header. Opcode, AA, RA and Z are not kept: a query is always opcode 0, and the
/// resolver needs no more than the id, QR, TC and the response code.
public struct DNSHeader: Hashable, Sendable {
    public var id: UInt16
    public var isResponse: Bool
    public var isTruncated: Bool
    public var recursionDesired: Bool
    public var responseCode: DNSResponseCode

    public init(id: UInt16, isResponse: Bool, isTruncated: Bool = false, recursionDesired: Bool = true, responseCode: DNSResponseCode = .noError) {
        (self.id, self.isResponse, self.isTruncated) = (id, isResponse, isTruncated)
        (self.recursionDesired, self.responseCode) = (recursionDesired, responseCode)
    }
}

/// RCODE (RFC 1035 §4.1.1), named as resolvers log them.
public struct DNSResponseCode: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    /// NXDOMAIN: the name does not exist.
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)

    public var description: String {
        let names = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"]
        return Int(rawValue) < names.count ? names[Int(rawValue)] : "RCODE \(rawValue)"
    }
}

public struct DNSQuestion: Hashable, Sendable {
    /// Without the trailing dot; the root is ".".
    public var name: String
    public var type: UInt16

    public init(name: String, type: UInt16) { (self.name, self.type) = (name, type) }
}

/// One resource record of class IN. Names are in presentation form without the trailing dot
/// (the root is "."); a label byte that is not printable ASCII, or is "." or "\", is escaped as
/// RFC 4343 does (`\.`, `\\`, `\DDD`), so a hostile label cannot pass for two.
public struct DNSRecord: Hashable, Sendable {
    public var name: String
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: String, ttl: UInt32, data: DNSRecordData) { (self.name, self.ttl, self.data) = (name, ttl, data) }
}

public enum DNSRecordData: Hashable, Sendable {
    /// Dotted decimal, "10.0.0.1".
    case a(String)
    /// RFC 5952 text: lower case, leading zeros dropped, the longest run of two or more zero
    /// groups (the first of equals) as "::", so "fd00::5". IPv4-mapped addresses stay in hex
    /// ("::ffff:a00:1"): §5's dotted tail is a SHOULD, and inet_pton reads both.
    case aaaa(String)
    /// RFC 2782. A target of "." means the service is decidedly not available.
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
    case cname(String)

    var type: UInt16 {
        switch self {
        case .a: DNSQueryType.a.rawValue
        case .aaaa: DNSQueryType.aaaa.rawValue
        case .srv: DNSQueryType.srv.rawValue
        case .cname: 5
        }
    }
}

/// Why bytes are not a message we can read, or a name or address cannot be written. Offsets are
/// where the field that failed starts.
public enum DNSMessageError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated(at: Int)
    /// A compression pointer past the message or not strictly backwards (the only way to loop).
    case badPointer(at: Int)
    case tooManyPointers(at: Int)
    /// Label types 0x40 and 0x80 (extended labels, RFC 6891 §5): nobody sends them.
    case badLabelType(at: Int)
    /// More than 255 bytes once the pointers are followed (RFC 1035 §2.3.4).
    case nameTooLong(at: Int)
    /// RDATA whose length does not fit its type (an A record of 5 bytes, an SRV target running on).
    case badRecordData(at: Int)
    /// A name we will not write: empty, an empty label, a label over 63 bytes, over 255 in all,
    /// or bytes other than printable ASCII without "\" (queries carry configured host names).
    case invalidName(String)
    case invalidAddress(String)

    public var description: String {
        switch self {
        case .truncated(let at): "DNS message ends inside the field at byte \(at)"
        case .badPointer(let at): "DNS compression pointer at byte \(at) does not point backwards into the message"
        case .tooManyPointers(let at): "DNS name at byte \(at) follows more than \(DNSReader.maxPointers) compression pointers"
        case .badLabelType(let at): "DNS label at byte \(at) has an unsupported type"
        case .nameTooLong(let at): "DNS name at byte \(at) is longer than 255 bytes"
        case .badRecordData(let at): "DNS record data at byte \(at) does not match its type"
        case .invalidName(let name): "\"\(name)\" is not a DNS name (labels of 1-63 bytes, 255 in all)"
        case .invalidAddress(let text): "\"\(text)\" is not an IP address"
        }
    }
}

extension DNSMessage {
    /// A standard query (opcode 0, RD set, one question, class IN). The id is the caller's: it
    /// must be unpredictable (RFC 5452), which a pure function cannot be.
    public static func query(id: UInt16, name: String, type: DNSQueryType) throws(DNSMessageError) -> [UInt8] {
        let header = DNSHeader(id: id, isResponse: false, recursionDesired: true)
        return try DNSMessage(header: header, questions: [DNSQuestion(name: name, type: type.rawValue)]).encoded()
    }

    /// The message on the wire, uncompressed, with an empty authority section: queries use it, and
    /// tests build responses with it. Sections over 65,535 records are a programming error.
    public func encoded() throws(DNSMessageError) -> [UInt8] {
        var out: [UInt8] = []
        var flags: UInt16 = UInt16(header.responseCode.rawValue)
        if header.isResponse { flags |= 0x8000 }
        if header.isTruncated { flags |= 0x0200 }
        if header.recursionDesired { flags |= 0x0100 }
        [header.id, flags, UInt16(questions.count), UInt16(answers.count), 0, UInt16(additionals.count)].forEach { out.append16($0) }
        for question in questions {
            try out.appendName(question.name)
            out.append16(question.type)
            out.append16(1)
        }
        for record in answers + additionals {
            try out.appendName(record.name)
            [record.data.type, 1, UInt16(record.ttl >> 16), UInt16(record.ttl & 0xFFFF)].forEach { out.append16($0) }
            var data: [UInt8] = []
            switch record.data {
            case .a(let text):
                guard let bytes = DNSAddressText.ipv4Bytes(text) else { throw .invalidAddress(text) }
                data = bytes
            case .aaaa(let text):
                guard let bytes = DNSAddressText.ipv6Bytes(text) else { throw .invalidAddress(text) }
                data = bytes
            case .srv(let priority, let weight, let port, let target):
                [priority, weight, port].forEach { data.append16($0) }
                try data.appendName(target)
            case .cname(let target):
                try data.appendName(target)
            }
            out.append16(UInt16(data.count))
            out += data
        }
        return out
    }

    /// Decodes a whole message. The authority section is read (to find the one after it) and
    /// dropped; records of other types or classes are skipped.
    public init(decoding bytes: [UInt8]) throws(DNSMessageError) {
        var reader = DNSReader(bytes: bytes)
        header = try reader.header()
        let counts = try (reader.u16(), reader.u16(), reader.u16(), reader.u16())
        questions = []
        for _ in 0..<counts.0 {
            let name = try reader.name()
            questions.append(DNSQuestion(name: name, type: try reader.u16()))
            _ = try reader.u16()
        }
        answers = try reader.records(counts.1)
        _ = try reader.records(counts.2)
        additionals = try reader.records(counts.3)
    }
}

extension DNSHeader {
    /// The header alone: enough to match an answer to its query (id, QR) and to see TC before
    /// the rest, which a truncated answer may cut anywhere.
    public init(decoding bytes: [UInt8]) throws(DNSMessageError) {
        var reader = DNSReader(bytes: bytes)
        self = try reader.header()
    }
}

/// A cursor over a message. Every read checks its length first.
struct DNSReader {
    /// A name has at most 127 labels in 255 bytes, and a compressor needs at most one pointer
    /// per label; more can only come from a hostile packet.
    static let maxPointers = 127

    let bytes: [UInt8]
    var offset = 0

    mutating func u16() throws(DNSMessageError) -> UInt16 {
        guard offset + 2 <= bytes.count else { throw .truncated(at: offset) }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func u32() throws(DNSMessageError) -> UInt32 {
        try UInt32(u16()) << 16 | UInt32(u16())
    }

    mutating func header() throws(DNSMessageError) -> DNSHeader {
        let (id, flags) = try (u16(), u16())
        return DNSHeader(
            id: id, isResponse: flags & 0x8000 != 0, isTruncated: flags & 0x0200 != 0,
            recursionDesired: flags & 0x0100 != 0, responseCode: DNSResponseCode(rawValue: UInt8(flags & 0x0F))
        )
    }

    /// Reads a name at `offset` and moves past its bytes in place (up to the first pointer).
    mutating func name() throws(DNSMessageError) -> String {
        let start = offset
        var text: [UInt8] = []
        var position = offset
        var wireLength = 1
        var pointers = 0
        var jumped = false
        while true {
            guard position < bytes.count else { throw .truncated(at: position) }
            let length = Int(bytes[position])
            switch length & 0xC0 {
            case 0xC0:
                guard position + 1 < bytes.count else { throw .truncated(at: position) }
                let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < position else { throw .badPointer(at: position) }
                pointers += 1
                guard pointers <= Self.maxPointers else { throw .tooManyPointers(at: start) }
                if !jumped { offset = position + 2 }
                jumped = true
                position = target
            case 0x00 where length == 0:
                if !jumped { offset = position + 1 }
                return text.isEmpty ? "." : String(decoding: text, as: UTF8.self)
            case 0x00:
                wireLength += length + 1
                guard wireLength <= 255 else { throw .nameTooLong(at: start) }
                guard position + length < bytes.count else { throw .truncated(at: position) }
                if !text.isEmpty { text.append(UInt8(ascii: ".")) }
                for byte in bytes[(position + 1)...(position + length)] { Self.appendEscaped(byte, to: &text) }
                position += length + 1
            default:
                throw .badLabelType(at: position)
            }
        }
    }

    static func appendEscaped(_ byte: UInt8, to text: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "."), UInt8(ascii: "\\"):
            text += [UInt8(ascii: "\\"), byte]
        case 0x21...0x7E:
            text.append(byte)
        default:
            text.append(UInt8(ascii: "\\"))
            text += [byte / 100, byte / 10 % 10, byte % 10].map { $0 + UInt8(ascii: "0") }
        }
    }

    mutating func records(_ count: UInt16) throws(DNSMessageError) -> [DNSRecord] {
        var records: [DNSRecord] = []
        for _ in 0..<count {
            if let record = try record() { records.append(record) }
        }
        return records
    }

    mutating func record() throws(DNSMessageError) -> DNSRecord? {
        let owner = try name()
        let (type, recordClass, ttl, length) = try (u16(), u16(), u32(), Int(u16()))
        let start = offset
        let end = start + length
        guard end <= bytes.count else { throw .truncated(at: start) }
        let data: DNSRecordData?
        switch recordClass == 1 ? type : 0 {
        case 1:
            guard length == 4 else { throw .badRecordData(at: start) }
            data = .a(DNSAddressText.ipv4(bytes[start..<end]))
        case 28:
            guard length == 16 else { throw .badRecordData(at: start) }
            data = .aaaa(DNSAddressText.ipv6(bytes[start..<end]))
        case 33:
            guard length >= 7 else { throw .badRecordData(at: start) }
            let (priority, weight, port) = try (u16(), u16(), u16())
            data = .srv(priority: priority, weight: weight, port: port, target: try name())
            guard offset == end else { throw .badRecordData(at: start) }  // the target ends with the RDATA
        case 5:
            data = .cname(try name())
            guard offset == end else { throw .badRecordData(at: start) }
        default:
            data = nil
        }
        offset = end
        return data.map { DNSRecord(name: owner, ttl: ttl, data: $0) }
    }
}

extension [UInt8] {
    mutating func append16(_ value: UInt16) { self += [UInt8(value >> 8), UInt8(value & 0xFF)] }

    /// A name without compression, with or without its trailing dot; "." is the root.
    mutating func appendName(_ name: String) throws(DNSMessageError) {
        let bytes = Array(name.utf8)
        let body = bytes.last == UInt8(ascii: ".") ? bytes.dropLast() : bytes[...]
        if body.isEmpty, !bytes.isEmpty {
            append(0)
            return
        }
        let labels = body.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        let wireLength = labels.reduce(1) { $0 + $1.count + 1 }
        guard wireLength <= 255,
            labels.allSatisfy({ (1...63).contains($0.count) && $0.allSatisfy { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "\\") } })
        else { throw .invalidName(name) }
        for label in labels {
            append(UInt8(label.count))
            self += label
        }
        append(0)
    }
}

/// Address text both ways, written here because SluiceCore has no inet_ntop (no Foundation).
enum DNSAddressText {
    static func ipv4(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map(String.init).joined(separator: ".")
    }

    static func ipv4Bytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { (1...3).contains($0.count) && $0.utf8.allSatisfy { (48...57).contains($0) } ? UInt8($0) : nil }
        return parts.count == 4 && bytes.count == 4 ? bytes : nil
    }

    /// RFC 5952 §4: the longest run of at least two zero groups becomes "::" (the first, if
    /// runs tie); a single zero group stays "0".
    static func ipv6(_ bytes: ArraySlice<UInt8>) -> String {
        let groups = stride(from: bytes.startIndex, to: bytes.endIndex, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var best = (start: 0, count: 1)
        var index = 0
        while index < groups.count {
            let end = groups[index...].firstIndex { $0 != 0 } ?? groups.count
            if end - index > best.count { best = (index, end - index) }
            index = max(end, index + 1)
        }
        let hex = { (part: ArraySlice<UInt16>) in part.map { String($0, radix: 16) }.joined(separator: ":") }
        guard best.count > 1 else { return hex(groups[...]) }
        return hex(groups[..<best.start]) + "::" + hex(groups[(best.start + best.count)...])
    }

    /// Hex groups with at most one "::"; no dotted IPv4 tail (`ipv6` never writes one).
    static func ipv6Bytes(_ text: String) -> [UInt8]? {
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            let values = fields.compactMap { (1...4).contains($0.count) && $0.allSatisfy(\.isHexDigit) ? UInt16($0, radix: 16) : nil }
            return values.count == fields.count ? values : nil
        }
        var all: [UInt16]
        if let gap = text.firstRange(of: "::") {
            guard let head = groups(text[..<gap.lowerBound]), let tail = groups(text[gap.upperBound...]),
                head.count + tail.count < 8
            else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let only = groups(text[...]), only.count == 8 else { return nil }
            all = only
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}
