import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import SluiceCore

/// Sends a merged batch to a replica and collects the whole answer: a POST with a deadline,
/// through the gateway's background client (whose idle connections the next batches reuse).
/// Batches are few and their answers are read whole anyway (they are split before anyone sees
/// them), so this stays apart from the streaming data path.
///
/// The Batcher tells two failures apart: past the deadline (`Failure.timedOut`: every member
/// is answered 504, nothing is sent again) and anything else (a refused or broken connection:
/// each member is sent alone).
enum BatchUpstream {
    struct Answer: Sendable {
        var status: Int
        var body: ByteBuffer
    }

    enum Failure: Error {
        case timedOut
    }

    /// Completes on `loop`, which must belong to the client's event loop group.
    static func post(
        _ body: [UInt8], path: String, to replica: ReplicaID, client: HTTPClient, on loop: any EventLoop, timeout: TimeAmount
    ) -> EventLoopFuture<Answer> {
        let request: HTTPClient.Request
        do {
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            request = try HTTPClient.Request(url: "http://\(replica)\(path)", method: .POST, headers: headers, body: .bytes(body))
        } catch {
            return loop.makeFailedFuture(error)
        }
        return client.execute(
            request: request, delegate: ResponseAccumulator(request: request), eventLoop: .delegate(on: loop), deadline: .now() + timeout
        ).futureResult.flatMapErrorThrowing { error in
            if let error = error as? HTTPClientError, error == .deadlineExceeded { throw Failure.timedOut }
            throw error
        }.map { response in
            Answer(status: Int(response.status.code), body: response.body ?? ByteBuffer())
        }
    }
}
