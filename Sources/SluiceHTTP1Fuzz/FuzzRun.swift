import NIOCore
import SluiceHTTP1

/// What a parser made of some bytes fed as one read, or as two cut at `cut`, the way the
/// handlers feed it (each read appended to what is still unparsed).
struct FuzzRun {
    var heads: [HTTP1Head] = []
    /// Per head: whether its body runs until the connection closes.
    var untilClose: [Bool] = []
    /// The body of each message that ended, data only (or as received, when `framed`).
    var bodies: [[UInt8]] = []
    var error: HTTP1ParseError?
    /// Body bytes handed out, and the largest `bodyBytes` the parser reported.
    var bodyBytesOut = 0
    var largestBodyCount = 0

    init(_ input: [UInt8], role: HTTP1Parser.Role, cut: Int?, framed: Bool, maxHeadBytes: Int) {
        var parser = HTTP1Parser(role: role, maxHeadBytes: maxHeadBytes)
        parser.passChunkFraming = framed
        var unparsed = ByteBuffer()
        var body: [UInt8] = []
        let pieces = cut.map { [input[..<$0], input[$0...]] } ?? [input[...]]
        for piece in pieces {
            unparsed.writeBytes(piece)
            do {
                while let event = try parser.next(&unparsed) {
                    switch event {
                    case .head(let head):
                        heads.append(head)
                        untilClose.append(parser.readsUntilClose)
                    case .body(let buffer):
                        bodyBytesOut += buffer.readableBytes
                        body += buffer.readableBytesView
                    case .end:
                        bodies.append(body)
                        body = []
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
        }
    }

    /// The same messages, bodies and error, however the input was cut.
    func sameEvents(as other: FuzzRun) -> Bool {
        func digest(_ head: HTTP1Head) -> [Int] {
            [head.bytes.readableBytes, head.contentLength ?? -1, head.isChunked ? 1 : 0, head.keepAlive ? 1 : 0, head.status]
                + head.fields.flatMap { [$0.name.lowerBound, $0.name.upperBound, $0.value.lowerBound, $0.value.upperBound] }
        }
        return heads.map(\.bytes) == other.heads.map(\.bytes) && heads.map(digest) == other.heads.map(digest)
            && untilClose == other.untilClose && bodies == other.bodies && error == other.error
    }
}
