import NIOCore
import SluiceHTTP1

/// Everything a parser produced from some bytes, read the way the handlers read: each piece is
/// appended to what is still unparsed, then events are taken until the parser needs more.
/// Bodies are joined per message, so runs over differently cut input compare equal.
struct ParserRun: Equatable {
    /// Per head: the start line, then each field as `name: value`, as the parser delimited them.
    var heads: [[[UInt8]]] = []
    var bodies: [[UInt8]] = []
    var ends = 0
    var error: HTTP1ParseError?
    /// Body bytes handed out, and the largest `bodyBytes` the parser reported: neither may
    /// exceed what was fed.
    var bodyBytesOut = 0
    var largestBodyCount = 0

    static func == (a: ParserRun, b: ParserRun) -> Bool {
        a.heads == b.heads && a.bodies == b.bodies && a.ends == b.ends && a.error == b.error
    }

    init(_ bytes: [UInt8], role: HTTP1Parser.Role, cuts: [Int] = [], framed: Bool = false, maxHead: Int = 16 * 1024) {
        var parser = HTTP1Parser(role: role, maxHeadBytes: maxHead)
        parser.passChunkFraming = framed
        var unparsed = ByteBuffer()
        var body: [UInt8] = []
        var start = 0
        for end in cuts + [bytes.count] where end >= start {
            unparsed.writeBytes(bytes[start..<end])
            start = end
            do {
                while let event = try parser.next(&unparsed) {
                    switch event {
                    case .head(let head):
                        heads.append(Self.lines(of: head, role: role))
                    case .body(let buffer):
                        bodyBytesOut += buffer.readableBytes
                        body += buffer.readableBytesView
                    case .end:
                        bodies.append(body)
                        body = []
                        ends += 1
                    }
                    largestBodyCount = max(largestBodyCount, parser.bodyBytes)
                }
            } catch {
                self.error = error
                return
            }
        }
        if parser.finishAtClose() != nil {
            bodies.append(body)
            ends += 1
        }
    }

    static func lines(of head: HTTP1Head, role: HTTP1Parser.Role) -> [[UInt8]] {
        func bytes(_ range: Range<Int>) -> [UInt8] {
            head.bytes.getBytes(at: head.bytes.readerIndex + range.lowerBound, length: range.count) ?? []
        }
        let start = role == .request
            ? bytes(head.method) + [0x20] + bytes(head.target) + Array(" 1.\(head.minorVersion)".utf8)
            : Array("\(head.status) 1.\(head.minorVersion)".utf8)
        return [start] + head.fields.map { bytes($0.name) + Array(": ".utf8) + bytes($0.value) }
    }

    /// The lines `lines(of:role:)` gives for a generated message.
    static func lines(of message: GeneratedMessage, role: HTTP1Parser.Role) -> [[UInt8]] {
        let start = role == .request
            ? message.method + [0x20] + message.target + Array(" 1.\(message.minorVersion)".utf8)
            : Array("\(message.status) 1.\(message.minorVersion)".utf8)
        return [start] + message.fields.map { $0.name + Array(": ".utf8) + $0.value }
    }
}
