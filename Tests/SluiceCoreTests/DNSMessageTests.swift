import Testing
@testable import SluiceCore

/// Exact tests against packets built by hand (byte by byte, with the offsets their compression
/// pointers use) and one captured from dnsmasq 2.90, then properties over seeded random input.
@Suite struct DNSMessageTests {
    /// Length-prefixed labels; the root byte only when `terminated`.
    static func labels(_ labels: String..., terminated: Bool = true) -> [UInt8] {
        labels.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + (terminated ? [0] : [])
    }

    static func header(id: UInt16 = 0xBEEF, flags: UInt16 = 0x8180, counts: [UInt16]) -> [UInt8] {
        ([id, flags] + counts).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    /// dnsmasq's answer to `_http._tcp.replicas.test SRV` (id 0x1234): the SRV target written
    /// once at byte 60, and the glue's owner names pointing at it (0xC03C).
    static let dnsmasqSRV: [UInt8] =
        header(id: 0x1234, flags: 0x8580, counts: [1, 1, 0, 2])
        + labels("_http", "_tcp", "replicas", "test") + [0, 33, 0, 1]
        + [0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 0, 0, 29] + [0, 0, 0, 0, 0x1F, 0x40] + labels("model-0", "replicas", "test")
        + [0xC0, 60, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0, 0, 1]
        + [0xC0, 60, 0, 28, 0, 1, 0, 0, 0, 0, 0, 16, 0xFD] + Array(repeating: 0, count: 14) + [1]

    @Test func aQueryIsTheBytesOfRFC1035() throws {
        let query = try DNSMessage.query(id: 0xBEEF, name: "model-0.replicas.test", type: .a)
        #expect(query == Self.header(flags: 0x0100, counts: [1, 0, 0, 0]) + Self.labels("model-0", "replicas", "test") + [0, 1, 0, 1])
        #expect(try DNSMessage.query(id: 0xBEEF, name: "model-0.replicas.test.", type: .a) == query)
        #expect(try DNSMessage.query(id: 7, name: "a", type: .aaaa) == Self.header(id: 7, flags: 0x0100, counts: [1, 0, 0, 0]) + [1, 0x61, 0, 0, 28, 0, 1])
        #expect(try DNSMessage.query(id: 7, name: "_http._tcp.a", type: .srv).suffix(4) == [0, 33, 0, 1])
        #expect(try DNSMessage.query(id: 7, name: ".", type: .a).suffix(5) == [0, 0, 1, 0, 1])
    }

    @Test func namesOutsideTheLimitsAreNotWritten() throws {
        let label63 = String(repeating: "a", count: 63)
        _ = try DNSMessage.query(id: 1, name: "\(label63).test", type: .a)
        // 3 × (63 + 1) + (61 + 1) + the root = 255 bytes: the longest name there is.
        let longest = [label63, label63, label63, String(repeating: "b", count: 61)].joined(separator: ".")
        _ = try DNSMessage.query(id: 1, name: longest, type: .a)
        for name in [String(repeating: "a", count: 64) + ".test", longest + "b", "", "a..b", ".a", "a b.test", "é.test", "a\\.b"] {
            #expect(throws: DNSMessageError.invalidName(name)) { try DNSMessage.query(id: 1, name: name, type: .a) }
        }
    }

    @Test func aCompressedSRVAnswerWithGlueDecodes() throws {
        let message = try DNSMessage(decoding: Self.dnsmasqSRV)
        let expected = DNSMessage(
            header: DNSHeader(id: 0x1234, isResponse: true),
            questions: [DNSQuestion(name: "_http._tcp.replicas.test", type: 33)],
            answers: [DNSRecord(name: "_http._tcp.replicas.test", ttl: 0, data: .srv(priority: 0, weight: 0, port: 8000, target: "model-0.replicas.test"))],
            additionals: [
                DNSRecord(name: "model-0.replicas.test", ttl: 0, data: .a("10.0.0.1")),
                DNSRecord(name: "model-0.replicas.test", ttl: 0, data: .aaaa("fd00::1")),
            ]
        )
        #expect(message == expected)
        #expect(try DNSHeader(decoding: Self.dnsmasqSRV) == expected.header)
    }

    /// A CNAME whose target ends in a pointer into the middle of the question's name, and an A
    /// record whose owner points into that CNAME's data.
    @Test func pointersIntoNamesAndIntoRecordDataDecode() throws {
        let packet =
            Self.header(counts: [1, 2, 0, 0])
            + Self.labels("alias", "replicas", "test") + [0, 1, 0, 1]  // bytes 12-36; "replicas" at 18
            + [0xC0, 12, 0, 5, 0, 1, 0, 0, 0x01, 0x2C, 0, 10] + Self.labels("model-0", terminated: false) + [0xC0, 18]  // data at 49
            + [0xC0, 49, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]
        #expect(
            try DNSMessage(decoding: packet).answers == [
                DNSRecord(name: "alias.replicas.test", ttl: 300, data: .cname("model-0.replicas.test")),
                DNSRecord(name: "model-0.replicas.test", ttl: 60, data: .a("10.0.0.1")),
            ])
    }

    @Test func aPointerLoopIsAnErrorNotAHang() {
        // A name pointing at itself, and two pointers pointing at each other (the first points
        // forwards): the backwards-only rule refuses both before any hop.
        let selfLoop = Self.header(counts: [1, 0, 0, 0]) + [0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSMessageError.badPointer(at: 12)) { try DNSMessage(decoding: selfLoop) }
        let pair = Self.header(counts: [1, 0, 0, 0]) + [0xC0, 14, 0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSMessageError.badPointer(at: 12)) { try DNSMessage(decoding: pair) }
        let outside = Self.header(counts: [1, 0, 0, 0]) + [0xFF, 0xFF, 0, 1, 0, 1]
        #expect(throws: DNSMessageError.badPointer(at: 12)) { try DNSMessage(decoding: outside) }
    }

    /// Backwards pointers cannot loop, but a chain of them could make every name cost the whole
    /// packet; a name follows at most 127.
    @Test func aChainOfPointersIsCutOffAfter127() throws {
        func chain(_ count: Int) -> DNSReader {
            var bytes: [UInt8] = [1, 0x61, 0]
            for index in 0..<count {
                let target = index == 0 ? 0 : 3 + 2 * (index - 1)
                bytes += [0xC0, UInt8(target)]
            }
            return DNSReader(bytes: bytes, offset: bytes.count - 2)
        }
        var allowed = chain(127)
        #expect(try allowed.name() == "a")
        #expect(allowed.offset == 3 + 2 * 127)
        var refused = chain(128)
        #expect(throws: DNSMessageError.tooManyPointers(at: 3 + 2 * 127)) { try refused.name() }
    }

    @Test func everyStrictPrefixOfAnAnswerIsTruncated() {
        for length in 0..<Self.dnsmasqSRV.count {
            do throws(DNSMessageError) {
                _ = try DNSMessage(decoding: Array(Self.dnsmasqSRV[..<length]))
                Issue.record("a prefix of \(length) bytes decoded")
            } catch {
                guard case .truncated = error else {
                    Issue.record("a prefix of \(length) bytes: \(error)")
                    continue
                }
            }
        }
        #expect(throws: DNSMessageError.truncated(at: 0)) { try DNSHeader(decoding: [0x12]) }
        #expect(throws: DNSMessageError.truncated(at: 2)) { try DNSHeader(decoding: [0x12, 0x34, 0x81]) }
    }

    @Test func malformedNamesAndRecordDataAreTypedErrors() {
        let question = Self.header(counts: [1, 1, 0, 0]) + Self.labels("a") + [0, 1, 0, 1]  // answer at 19
        let fiveByteA = question + [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 5, 10, 0, 0, 1, 9]
        #expect(throws: DNSMessageError.badRecordData(at: 31)) { try DNSMessage(decoding: fiveByteA) }
        let fifteenByteAAAA = question + [0xC0, 12, 0, 28, 0, 1, 0, 0, 0, 0, 0, 15] + Array(repeating: 0, count: 15)
        #expect(throws: DNSMessageError.badRecordData(at: 31)) { try DNSMessage(decoding: fifteenByteAAAA) }
        // An SRV whose target runs past its RDATA, and a CNAME whose RDATA has a byte to spare.
        let longTarget = question + [0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 80] + Self.labels("b")
        #expect(throws: DNSMessageError.badRecordData(at: 31)) { try DNSMessage(decoding: longTarget) }
        let spareByte = question + [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 0, 0, 4] + Self.labels("b") + [7]
        #expect(throws: DNSMessageError.badRecordData(at: 31)) { try DNSMessage(decoding: spareByte) }
        let rdataPastTheEnd = question + [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0]
        #expect(throws: DNSMessageError.truncated(at: 31)) { try DNSMessage(decoding: rdataPastTheEnd) }
        let extendedLabel = Self.header(counts: [1, 0, 0, 0]) + [0x41, 0x61, 0, 0, 1, 0, 1]
        #expect(throws: DNSMessageError.badLabelType(at: 12)) { try DNSMessage(decoding: extendedLabel) }
    }

    @Test func aNameOver255BytesIsRefusedAlsoWhenPointersMakeItSo() {
        let label63 = String(repeating: "a", count: 63)
        let inPlace = Self.header(counts: [1, 0, 0, 0]) + Self.labels(label63, label63, label63, label63) + [0, 1, 0, 1]
        #expect(throws: DNSMessageError.nameTooLong(at: 12)) { try DNSMessage(decoding: inPlace) }
        // A 255-byte question name is fine; an answer name of one label more pointing at it is not.
        let question = Self.labels(label63, label63, label63, String(repeating: "b", count: 61)) + [0, 1, 0, 1]
        let viaPointer = Self.header(counts: [1, 1, 0, 0]) + question + [1, 0x63, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]
        #expect(throws: DNSMessageError.nameTooLong(at: 12 + 259)) { try DNSMessage(decoding: viaPointer) }
    }

    /// Other types, other classes and the authority section are skipped, not errors.
    @Test func recordsOfOtherTypesAndClassesAreSkipped() throws {
        let packet =
            Self.header(flags: 0x8183, counts: [1, 2, 1, 1]) + Self.labels("a") + [0, 1, 0, 1]
            + [0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 1, 0x78]  // TXT "x"
            + [0xC0, 12, 0, 1, 0, 3, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]  // A in class CH
            + [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]  // an A in the authority section
            + [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]  // EDNS OPT
        let message = try DNSMessage(decoding: packet)
        #expect(message.header.responseCode == .nameError)
        #expect(message.answers.isEmpty && message.additionals.isEmpty)
    }

    @Test func labelBytesThatCouldReadAsSomethingElseAreEscaped() throws {
        let packet = Self.header(counts: [1, 0, 0, 0]) + [5, 0x61, 0x2E, 0x62, 0x00, 0x5C] + Self.labels("test") + [0, 1, 0, 1]
        #expect(try DNSMessage(decoding: packet).questions == [DNSQuestion(name: #"a\.b\000\\.test"#, type: 1)])
    }

    @Test func ipv6TextIsRFC5952() {
        func text(_ groups: UInt16...) -> String {
            DNSAddressText.ipv6(groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }[...])
        }
        #expect(text(0, 0, 0, 0, 0, 0, 0, 0) == "::")
        #expect(text(0, 0, 0, 0, 0, 0, 0, 1) == "::1")
        #expect(text(0xFD00, 0, 0, 0, 0, 0, 0, 5) == "fd00::5")
        #expect(text(1, 0, 0, 0, 0, 0, 0, 0) == "1::")
        #expect(text(0x2001, 0x0DB8, 0, 0, 0, 0, 0, 1) == "2001:db8::1")  // §4.1 leading zeros, §4.3 lower case
        #expect(text(0x2001, 0xDB8, 0, 1, 1, 1, 1, 1) == "2001:db8:0:1:1:1:1:1")  // §4.2.2 one zero group stays
        #expect(text(0x2001, 0, 0, 1, 0, 0, 0, 1) == "2001:0:0:1::1")  // §4.2.3 the longest run
        #expect(text(0x2001, 0xDB8, 0, 0, 1, 0, 0, 1) == "2001:db8::1:0:0:1")  // §4.2.3 the first of equals
        #expect(text(0xABCD, 0xEF01, 0x2345, 0x6789, 0xABCD, 0xEF01, 0x2345, 0x6789) == "abcd:ef01:2345:6789:abcd:ef01:2345:6789")
        #expect(text(0, 0, 0, 0, 0, 0xFFFF, 0x0A00, 1) == "::ffff:a00:1")
    }

    @Test func addressTextIsReadBack() {
        #expect(DNSAddressText.ipv6Bytes("fd00::5") == [0xFD] + Array(repeating: 0, count: 14) + [5])
        #expect(DNSAddressText.ipv4Bytes("10.0.0.255") == [10, 0, 0, 255])
        for bad in ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "1:2:3:4:5:6:7:8::", "+1::", ":1::", ""] {
            #expect(DNSAddressText.ipv6Bytes(bad) == nil, "\(bad)")
        }
        for bad in ["10.0.0", "10.0.0.256", "10.0.0.+1", "10..0.1", "1.2.3.4.5", ""] {
            #expect(DNSAddressText.ipv4Bytes(bad) == nil, "\(bad)")
        }
    }

    // MARK: properties (seeded, bounded)

    /// Random bytes, and the dnsmasq answer with random bytes overwritten (which gets past the
    /// header and into names and records), never trap: they decode or throw.
    @Test func randomAndCorruptedPacketsNeverCrashTheDecoder() {
        var random = SplitMix64(seed: 17)
        var decoded = 0
        for round in 0..<20_000 {
            var packet: [UInt8]
            if round % 2 == 0 {
                packet = (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                packet = Self.dnsmasqSRV
                for _ in 0..<(1 + random.next() % 4) {
                    packet[Int(random.next() % UInt64(packet.count))] = UInt8(truncatingIfNeeded: random.next())
                }
                if round % 4 == 1 { packet = Array(packet.prefix(Int(random.next() % UInt64(packet.count)))) }
            }
            if (try? DNSMessage(decoding: packet)) != nil { decoded += 1 }
        }
        #expect(decoded > 2_000)  // the corrupted half reached the records, not only the header
    }

    /// Responses built from random names, records and header bits come back equal through
    /// `encoded()` and the decoder; addresses from random bytes (zero groups likely) exercise the
    /// RFC 5952 text both ways.
    @Test func builtResponsesRoundTrip() throws {
        var random = SplitMix64(seed: 5952)
        func pick(_ bound: Int) -> Int { Int(random.next() % UInt64(bound)) }
        func name() -> String {
            let alphabet = Array("abcdefghijklmnopqrstuvwxyzABC0123456789-_")
            return (0..<(1 + pick(4))).map { _ in String((0..<(1 + pick(20))).map { _ in alphabet[pick(alphabet.count)] }) }
                .joined(separator: ".")
        }
        func record() -> DNSRecord {
            let data: DNSRecordData
            switch pick(4) {
            case 0: data = .a(DNSAddressText.ipv4((0..<4).map { _ in UInt8(pick(256)) }[...]))
            case 1:
                let groups = (0..<8).map { _ in pick(3) == 0 ? UInt16(pick(65_536)) : 0 }
                data = .aaaa(DNSAddressText.ipv6(groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }[...]))
            case 2: data = .srv(priority: UInt16(pick(65_536)), weight: UInt16(pick(9)), port: UInt16(pick(65_536)), target: pick(8) == 0 ? "." : name())
            default: data = .cname(name())
            }
            return DNSRecord(name: name(), ttl: UInt32(truncatingIfNeeded: random.next()), data: data)
        }
        for _ in 0..<2_000 {
            let header = DNSHeader(
                id: UInt16(pick(65_536)), isResponse: pick(2) == 0, isTruncated: pick(2) == 0,
                recursionDesired: pick(2) == 0, responseCode: DNSResponseCode(rawValue: UInt8(pick(16)))
            )
            let message = DNSMessage(
                header: header,
                questions: (0..<pick(3)).map { _ in DNSQuestion(name: name(), type: DNSQueryType.allCases[pick(3)].rawValue) },
                answers: (0..<pick(6)).map { _ in record() },
                additionals: (0..<pick(4)).map { _ in record() }
            )
            #expect(try DNSMessage(decoding: message.encoded()) == message)
        }
    }
}
