#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte classes and comparisons of RFC 9110 / 9112, shared by the parser and the rewriter.
///
/// The predicates are `@inlinable`: the gateway matches header names with them from its own
/// module, once per field, where a call each would cost more than the comparison.
public enum HTTP1Bytes {
    public static let cr = UInt8(ascii: "\r")
    public static let lf = UInt8(ascii: "\n")
    public static let space = UInt8(ascii: " ")
    public static let tab = UInt8(ascii: "\t")
    public static let colon = UInt8(ascii: ":")

    /// `tchar`: the characters of a token (method, field name, transfer coding).
    @inlinable @inline(__always)
    public static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x61...0x7A, 0x41...0x5A, 0x30...0x39: true  // a-z A-Z 0-9
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true  // !#$%&'*+-.^_`|~
        default: false
        }
    }

    /// A field value byte: visible ASCII, obs-text, space or tab (no control characters).
    @inlinable @inline(__always)
    public static func isValueByte(_ byte: UInt8) -> Bool {
        byte >= 0x20 ? byte != 0x7F : byte == 0x09  // tab
    }

    @inlinable @inline(__always)
    public static func lower(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
    }

    /// Whether `bytes` spell `lowercase` ignoring ASCII case (field names, tokens).
    @inlinable @inline(__always)
    public static func equalsLowercase(_ bytes: Slice<UnsafeRawBufferPointer>, _ lowercase: StaticString) -> Bool {
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
    @inlinable @inline(__always)
    public static func equals(_ bytes: Slice<UnsafeRawBufferPointer>, _ exact: StaticString) -> Bool {
        guard bytes.count == exact.utf8CodeUnitCount else { return false }
        return memcmp(UnsafeRawBufferPointer(rebasing: bytes).baseAddress!, exact.utf8Start, bytes.count) == 0
    }

    /// As above, for names only known at run time (those a `Connection` field lists).
    @inlinable
    public static func equalsLowercase(_ bytes: Slice<UnsafeRawBufferPointer>, runtimeName lowercase: String) -> Bool {
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
