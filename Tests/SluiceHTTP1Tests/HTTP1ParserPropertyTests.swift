import Testing
import SluiceHTTP1

/// Properties over generated input (seeded, so a failure names the iteration that replays it).
@Suite struct HTTP1ParserPropertyTests {
    @Test func anyValidRequestStreamRoundTripsHoweverItIsCut() {
        var generator = MessageGenerator(seed: 0x5EED_0001)
        for iteration in 0..<400 {
            // One to three pipelined requests, some after empty lines (RFC 9112 §2.2).
            let messages = (0..<generator.int(1...3)).map { _ in generator.request() }
            var wire: [UInt8] = []
            for message in messages {
                if generator.chance(15) { wire += Array(repeating: [0x0D, 0x0A], count: generator.int(1...2)).flatMap { $0 } }
                wire += message.wire
            }
            let cuts = generator.cuts(wire.count)
            let run = ParserRun(wire, role: .request, cuts: cuts)
            #expect(run.error == nil, "iteration \(iteration), cuts \(cuts)")
            #expect(run.heads == messages.map { ParserRun.lines(of: $0, role: .request) }, "iteration \(iteration), cuts \(cuts)")
            #expect(run.bodies == messages.map(\.body), "iteration \(iteration), cuts \(cuts)")
            let framed = ParserRun(wire, role: .request, cuts: cuts, framed: true)
            #expect(framed.bodies == messages.map(\.bodyOnWire), "iteration \(iteration), framed, cuts \(cuts)")
        }
    }

    @Test func anyValidResponseStreamRoundTripsHoweverItIsCut() {
        var generator = MessageGenerator(seed: 0x5EED_0002)
        for iteration in 0..<400 {
            let messages = (0..<generator.int(1...3)).map { _ in generator.response() }
            let wire = messages.flatMap(\.wire)
            let cuts = generator.cuts(wire.count)
            let run = ParserRun(wire, role: .response, cuts: cuts)
            #expect(run.error == nil, "iteration \(iteration), cuts \(cuts)")
            #expect(run.heads == messages.map { ParserRun.lines(of: $0, role: .response) }, "iteration \(iteration), cuts \(cuts)")
            #expect(run.bodies == messages.map(\.body), "iteration \(iteration), cuts \(cuts)")
            let framed = ParserRun(wire, role: .response, cuts: cuts, framed: true)
            #expect(framed.bodies == messages.map(\.bodyOnWire), "iteration \(iteration), framed, cuts \(cuts)")
        }
    }

    /// Random bytes, and valid requests with a few bytes changed to the ones that matter to a
    /// parser (CR, LF, space, tab, colon, NUL, comma, a digit): each either parses or throws,
    /// gives the same events and error however it is cut, and never hands out more body bytes
    /// than it was given.
    @Test func arbitraryBytesParseOrThrowTheSameWayHoweverTheyAreCut() {
        var generator = MessageGenerator(seed: 0x5EED_0003)
        let interesting: [UInt8] = [0x0D, 0x0A, 0x20, 0x09, 0x3A, 0x00, 0x2C, 0x30, 0x3B, 0x7F, 0x80]
        for iteration in 0..<3000 {
            let role: HTTP1Parser.Role = generator.chance(50) ? .request : .response
            var input: [UInt8]
            switch iteration % 3 {
            case 0:
                input = generator.bytes(0...200, from: MessageGenerator.allBytes)
            case 1:
                input = generator.bytes(0...200, from: Array("GET / HTTP/1.1\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n0;a\r\n\r\n".utf8))
            default:
                input = (role == .request ? generator.request() : generator.response()).wire
                for _ in 0..<generator.int(1...4) where !input.isEmpty {
                    let at = generator.int(0...(input.count - 1))
                    switch generator.int(0...2) {
                    case 0: input[at] = generator.pick(interesting)
                    case 1: input.insert(generator.pick(interesting), at: at)
                    default: input.remove(at: at)
                    }
                }
            }
            let maxHead = generator.chance(20) ? generator.int(16...128) : 16 * 1024
            let whole = ParserRun(input, role: role, maxHead: maxHead)
            let cuts = generator.cuts(input.count)
            let cut = ParserRun(input, role: role, cuts: cuts, maxHead: maxHead)
            #expect(cut == whole, "iteration \(iteration), \(role), cuts \(cuts): \(input)")
            for run in [whole, cut] {
                #expect(run.bodyBytesOut <= input.count && run.largestBodyCount <= input.count, "iteration \(iteration)")
            }
            let framed = ParserRun(input, role: role, cuts: cuts, framed: true, maxHead: maxHead)
            #expect(framed.error == whole.error && framed.ends == whole.ends && framed.bodyBytesOut <= input.count, "iteration \(iteration), framed")
        }
    }
}
