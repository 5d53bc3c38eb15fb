import NIOCore
import NIOPosix

/// Bytes in, bytes out, for requests that an HTTP client library would correct or responses it
/// would hide (odd framing, 1xx). Reads are bounded by a marker and by a timeout.
public enum RawConnection {
    /// Sends `request`, reads until `until` appears (or the peer closes); optionally sends
    /// `thenSend` and reads on until `thenUntil`. Returns everything read.
    public static func exchange(
        _ request: String, with address: SocketAddress, group: any EventLoopGroup,
        until: String? = nil, thenSend: String? = nil, thenUntil: String? = nil,
        timeout: Duration = .seconds(10)
    ) async throws -> String {
        let channel = try await ClientBootstrap(group: group).connect(to: address) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        return try await withThrowingTaskGroup(of: String.self) { tasks in
            tasks.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(string: request))
                    var text = ""
                    var iterator = inbound.makeAsyncIterator()
                    var marker = until
                    var next = thenSend
                    while let chunk = try await iterator.next() {
                        text += String(buffer: chunk)
                        if let current = marker, text.contains(current) {
                            guard let send = next else { break }
                            next = nil
                            marker = thenUntil
                            try await outbound.write(ByteBuffer(string: send))
                        }
                    }
                    return text
                }
            }
            tasks.addTask {
                try await Task.sleep(for: timeout)
                throw ChannelError.connectTimeout(.seconds(10))
            }
            let text = try await tasks.next()!
            tasks.cancelAll()
            return text
        }
    }
}
