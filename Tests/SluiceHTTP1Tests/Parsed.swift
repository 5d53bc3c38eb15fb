import NIOCore
import Testing
@testable import SluiceHTTP1

/// What a parser run produced, flattened so runs over differently split input compare equal.
struct Parsed: Equatable {
    var heads: [String] = []
    var bodies: [String] = []
    var ends = 0
    var error: HTTP1ParseError?
}

/// Feeds `input` to a parser in pieces of `pieceSize` bytes (everything at once when nil), or
/// cut at the byte offsets `cuts`, the way reads arrive, keeping unparsed bytes between pieces
/// as the handlers do.
func parse(
    _ input: String, role: HTTP1Parser.Role = .request, pieceSize: Int? = nil, cuts: [Int] = [], framed: Bool = false,
    toHEAD: Bool = false, closeAtEnd: Bool = false, maxHead: Int = 16 * 1024
) -> Parsed {
    var parser = HTTP1Parser(role: role, maxHeadBytes: maxHead)
    parser.passChunkFraming = framed
    parser.requestWasHEAD = toHEAD
    var result = Parsed()
    var body = ""
    let bytes = Array(input.utf8)
    let size = pieceSize ?? max(bytes.count, 1)
    var unparsed = ByteBuffer()
    var offset = 0
    var cuts = cuts[...]
    repeat {
        let end = cuts.popFirst() ?? min(offset + size, bytes.count)
        let piece = bytes[offset..<end]
        offset += piece.count
        unparsed.writeBytes(piece)
        do {
            while let event = try parser.next(&unparsed) {
                switch event {
                case .head(let head):
                    let line = role == .request ? "\(head.string(head.method)) \(head.targetString)" : head.string(head.statusText)
                    result.heads.append("\(line) 1.\(head.minorVersion) fields=\(head.fields.count)")
                case .body(let buffer):
                    body += String(buffer: buffer)
                case .end:
                    result.bodies.append(body)
                    body = ""
                    result.ends += 1
                }
            }
        } catch {
            result.error = error
            return result
        }
    } while offset < bytes.count
    if closeAtEnd, parser.finishAtClose() != nil {
        result.bodies.append(body)
        result.ends += 1
    }
    return result
}

func head(_ text: String, role: HTTP1Parser.Role = .request) throws -> HTTP1Head {
    var parser = HTTP1Parser(role: role, maxHeadBytes: 16 * 1024)
    var buffer = ByteBuffer(string: text)
    guard case .head(let head) = try parser.next(&buffer) else {
        Issue.record("no head in \(text.debugDescription)")
        throw HTTP1ParseError.malformed("test")
    }
    return head
}
