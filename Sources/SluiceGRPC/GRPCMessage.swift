/// gRPC's length-prefixed message framing (a compressed flag byte, a 4-byte big-endian length,
/// the message): what a unary call's body holds.
public enum GRPCMessage {
    /// The one uncompressed message `body` holds; nil for anything else (compressed, several
    /// messages, a short body), which the gateway passes on unread.
    public static func single(_ body: some Collection<UInt8>) -> ArraySlice<UInt8>? {
        let bytes = Array(body)
        guard bytes.count >= 5, bytes[0] == 0 else { return nil }
        let length = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
        guard bytes.count == 5 + length else { return nil }
        return bytes[5...]
    }

    /// `message` framed, uncompressed.
    public static func framed(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(message.count)
        return [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + message
    }
}
