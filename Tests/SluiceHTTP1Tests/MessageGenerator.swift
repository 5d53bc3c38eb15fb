import SluiceCore

/// A valid HTTP/1.1 message drawn at random, and what a parser must find in it.
struct GeneratedMessage {
    /// Requests: method and target; responses: the status code.
    var method: [UInt8] = []
    var target: [UInt8] = []
    var status = 0
    var minorVersion = 1
    /// Every field line, name and value as the parser reports them (value without its OWS).
    var fields: [(name: [UInt8], value: [UInt8])] = []
    /// The body's data, and the body as sent (with its chunk framing when chunked).
    var body: [UInt8] = []
    var bodyOnWire: [UInt8] = []
    var wire: [UInt8] = []
}

/// Draws messages from a seeded generator, so a failure names a seed and an iteration that
/// replay it. Every message is one the parser must accept: the byte classes, whitespace,
/// case, chunk sizes and extensions vary over what RFC 9112 allows.
struct MessageGenerator {
    var random: SplitMix64

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func chance(_ percent: Int) -> Bool { int(1...100) <= percent }
    mutating func pick<T>(_ items: [T]) -> T { items.randomElement(using: &random)! }

    static let allBytes = Array(UInt8.min...UInt8.max)
    static let tokenBytes = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~".utf8)
    static let targetBytes = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/?=&%:@!$'()*+,;".utf8)
    /// Names the parser reads for framing or connection options: generated fields avoid them
    /// (the tests that want them add them on purpose).
    static let meaningfulNames: Set<String> = ["content-length", "transfer-encoding", "connection", "host", "expect"]

    mutating func bytes(_ length: ClosedRange<Int>, from alphabet: [UInt8]) -> [UInt8] {
        (0..<int(length)).map { _ in pick(alphabet) }
    }

    mutating func token(_ length: ClosedRange<Int>) -> [UInt8] { bytes(length, from: Self.tokenBytes) }

    /// `name` in a random ASCII case.
    mutating func anyCase(_ name: String) -> [UInt8] {
        name.utf8.map { byte in (byte >= 0x61 && byte <= 0x7A && chance(50)) ? byte - 0x20 : byte }
    }

    /// Optional whitespace: nothing most of the time, else a few spaces and tabs.
    mutating func ows() -> [UInt8] { chance(70) ? [] : bytes(1...3, from: [0x20, 0x09]) }

    /// A field value: visible ASCII and obs-text, with spaces and tabs only inside.
    mutating func fieldValue() -> [UInt8] {
        let visible = Array(UInt8(0x21)...0x7E) + Array(UInt8(0x80)...0xFF)
        var value: [UInt8] = []
        for index in 0..<int(0...24) {
            if index > 0, chance(15) { value += bytes(1...2, from: [0x20, 0x09]) }
            value.append(pick(visible))
        }
        return value
    }

    mutating func randomField() -> (name: [UInt8], value: [UInt8]) {
        var name = token(1...16)
        while Self.meaningfulNames.contains(String(decoding: name, as: UTF8.self).lowercased()) { name = token(1...16) }
        return (name, fieldValue())
    }

    /// Appends the line `name: value` with random whitespace around the value, and records it.
    mutating func addField(_ name: [UInt8], _ value: [UInt8], to message: inout GeneratedMessage) {
        message.wire += name + [UInt8(ascii: ":")] + ows() + value + ows() + [0x0D, 0x0A]
        message.fields.append((name, value))
    }

    mutating func request() -> GeneratedMessage {
        var message = GeneratedMessage()
        message.method = chance(70) ? Array(pick(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]).utf8) : token(1...10)
        message.target = pick([Array("*".utf8), Array("http://replica:8000/v1/x".utf8), [UInt8(ascii: "/")] + bytes(0...40, from: Self.targetBytes)])
        message.minorVersion = chance(85) ? 1 : 0
        message.wire = message.method + [0x20] + message.target + Array(" HTTP/1.\(message.minorVersion)\r\n".utf8)
        addFieldsAndBody(to: &message, chunkedAllowed: true)
        return message
    }

    mutating func response() -> GeneratedMessage {
        var message = GeneratedMessage()
        message.status = pick([200, 200, 201, 204, 304, 400, 404, 429, 500, 503])
        message.minorVersion = chance(90) ? 1 : 0
        message.wire = Array("HTTP/1.\(message.minorVersion) \(message.status)".utf8)
        if chance(90) { message.wire += [0x20] + fieldValue() }
        message.wire += [0x0D, 0x0A]
        addFieldsAndBody(to: &message, chunkedAllowed: true, bodyAllowed: message.status != 204 && message.status != 304)
        return message
    }

    /// Fields, a framing field, the empty line and the body. A message without a body is
    /// framed by `Content-Length: 0` or (requests only) by nothing.
    private mutating func addFieldsAndBody(to message: inout GeneratedMessage, chunkedAllowed: Bool, bodyAllowed: Bool = true) {
        var fields = (0..<int(0...10)).map { _ in randomField() }
        if message.status == 0, chance(80) { fields.insert((anyCase("host"), Array("replica.test:8000".utf8)), at: int(0...fields.count)) }
        let body = bodyAllowed ? bytes(0...300, from: MessageGenerator.allBytes) : []
        let chunked = bodyAllowed && chunkedAllowed && chance(45)
        let framing: (name: [UInt8], value: [UInt8])?
        if chunked {
            framing = (anyCase("transfer-encoding"), anyCase("chunked"))
        } else if !body.isEmpty || message.status != 0 || chance(50) {
            framing = (anyCase("content-length"), Array(String(body.count).utf8))
        } else {
            framing = nil
        }
        if let framing { fields.insert(framing, at: int(0...fields.count)) }
        for field in fields { addField(field.name, field.value, to: &message) }
        message.wire += [0x0D, 0x0A]
        message.body = body
        message.bodyOnWire = chunked ? chunkedBody(body) : body
        message.wire += message.bodyOnWire
    }

    /// `body` in chunks of random sizes, with hex sizes in either case (sometimes zero-padded),
    /// chunk extensions, and trailer fields.
    mutating func chunkedBody(_ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < body.count {
            let size = min(int(1...80), body.count - offset)
            out += sizeLine(size)
            out += body[offset..<(offset + size)] + [0x0D, 0x0A]
            offset += size
        }
        out += sizeLine(0)
        for _ in 0..<(chance(80) ? 0 : int(1...3)) {
            let field = randomField()
            out += field.name + Array(": ".utf8) + field.value + [0x0D, 0x0A]
        }
        return out + [0x0D, 0x0A]
    }

    private mutating func sizeLine(_ size: Int) -> [UInt8] {
        var hex = String(size, radix: 16, uppercase: chance(50))
        if chance(10) { hex = String(repeating: "0", count: int(1...4)) + hex }
        var line = Array(hex.utf8)
        if chance(25) {
            line += bytes(0...2, from: [0x20, 0x09]) + [UInt8(ascii: ";")] + token(1...8)
            if chance(60) { line += [UInt8(ascii: "=")] + (chance(50) ? token(1...8) : Array("\"a quoted; value\"".utf8)) }
        }
        return line + [0x0D, 0x0A]
    }

    /// Cut points for feeding `count` bytes as separate reads: none, a few random ones, or
    /// every byte.
    mutating func cuts(_ count: Int) -> [Int] {
        guard count > 1 else { return [] }
        switch int(0...9) {
        case 0: return []
        case 1: return Array(1..<count)
        default: return Set((0..<int(1...6)).map { _ in int(1...(count - 1)) }).sorted()
        }
    }
}
