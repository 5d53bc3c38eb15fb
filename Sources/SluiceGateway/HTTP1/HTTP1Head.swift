import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A parsed HTTP/1.x message head: the bytes as received and where each piece lies in them.
///
/// The data path never turns a head into a dictionary of strings: the proxy only needs a few
/// facts (framing, keep-alive, the path) and to copy most fields through unchanged, so fields
/// stay byte ranges into `bytes` and are compared or copied as bytes.
struct HTTP1Head {
    /// Byte ranges of one field line's name and value (value without surrounding whitespace).
    struct Field {
        var name: Range<Int>
        var value: Range<Int>
    }

    /// The head from the start line through the final empty line; ranges index it from 0.
    var bytes: ByteBuffer
    var fields: [Field] = []
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    var minorVersion = 1
    /// Requests: the method and the request target.
    var method: Range<Int> = 0..<0
    var target: Range<Int> = 0..<0
    /// Responses: the status code, and the status code through the end of the reason phrase.
    var status = 0
    var statusText: Range<Int> = 0..<0

    /// The message's `Content-Length`, when it has one that frames it (never with chunking).
    var contentLength: Int?
    /// The body is chunked (the final transfer coding is `chunked`).
    var isChunked = false
    var hasTransferEncoding = false
    var connectionClose = false
    var connectionKeepAlive = false
    /// `Connection` names other fields (which are then hop-by-hop too).
    var connectionNamesOthers = false
    var hasHost = false
    /// `Expect: 100-continue`.
    var expectsContinue = false

    init(bytes: ByteBuffer) {
        self.bytes = bytes
    }

    /// Whether the sender wants the connection kept after this message.
    var keepAlive: Bool {
        minorVersion >= 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
    }

    var isHEAD: Bool {
        bytes.withUnsafeReadableBytes { HTTP1Bytes.equals($0[method], "HEAD") }
    }

    func string(_ range: Range<Int>) -> String {
        bytes.getString(at: bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    /// The request target as a string.
    var targetString: String { string(target) }

    /// The first field named `lowercaseName` (matched ignoring ASCII case).
    func first(_ lowercaseName: StaticString) -> Field? {
        fields.first { nameEquals($0, lowercaseName) }
    }

    func value(_ field: Field) -> String { string(field.value) }

    /// `Content-Type: text/event-stream` (server-sent events), parameters aside.
    var isEventStream: Bool {
        guard let field = first("content-type") else { return false }
        return value(field).lowercased().hasPrefix("text/event-stream")
    }

    func nameEquals(_ field: Field, _ lowercaseName: StaticString) -> Bool {
        bytes.withUnsafeReadableBytes { HTTP1Bytes.equalsLowercase($0[field.name], lowercaseName) }
    }

}

/// Byte classes and comparisons of RFC 9110 / 9112, shared by the parser and the rewriter.
enum HTTP1Bytes {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")

    /// `tchar`: the characters of a token (method, field name, transfer coding).
    @inline(__always) static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x61...0x7A, 0x41...0x5A, 0x30...0x39: true  // a-z A-Z 0-9
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true  // !#$%&'*+-.^_`|~
        default: false
        }
    }

    /// A field value byte: visible ASCII, obs-text, space or tab (no control characters).
    @inline(__always) static func isValueByte(_ byte: UInt8) -> Bool {
        byte >= 0x20 ? byte != 0x7F : byte == tab
    }

    @inline(__always) static func lower(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
    }

    /// Whether `bytes` spell `lowercase` ignoring ASCII case (field names, tokens).
    @inline(__always)
    static func equalsLowercase(_ bytes: Slice<UnsafeRawBufferPointer>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        var offset = 0
        for byte in bytes {
            guard lower(byte) == expected[offset] else { return false }
            offset += 1
        }
        return true
    }

    /// Whether `bytes` spell `exact` (methods and versions are case-sensitive).
    @inline(__always)
    static func equals(_ bytes: Slice<UnsafeRawBufferPointer>, _ exact: StaticString) -> Bool {
        guard bytes.count == exact.utf8CodeUnitCount else { return false }
        return memcmp(UnsafeRawBufferPointer(rebasing: bytes).baseAddress!, exact.utf8Start, bytes.count) == 0
    }

    /// As above, for names only known at run time (those a `Connection` field lists).
    static func equalsLowercase(_ bytes: Slice<UnsafeRawBufferPointer>, runtimeName lowercase: String) -> Bool {
        guard bytes.count == lowercase.utf8.count else { return false }
        return zip(bytes, lowercase.utf8).allSatisfy { lower($0) == $1 }
    }

    /// Calls `body` with each comma-separated element of a list value, without surrounding spaces.
    static func forEachListElement(_ bytes: Slice<UnsafeRawBufferPointer>, _ body: (Slice<UnsafeRawBufferPointer>) -> Void) {
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index <= bytes.endIndex {
            if index == bytes.endIndex || bytes[index] == UInt8(ascii: ",") {
                var low = start
                var high = index
                while low < high, bytes[low] == space || bytes[low] == tab { low += 1 }
                while high > low, bytes[high - 1] == space || bytes[high - 1] == tab { high -= 1 }
                if low < high { body(bytes[low..<high]) }
                start = index + 1
            }
            index += 1
        }
    }
}
