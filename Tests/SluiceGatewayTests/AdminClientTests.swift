import SluiceLoad
import Testing

/// The load tool's admin client reads answers in any framing, sends its token, and gives up
/// on a gateway that is gone within its timeout.
@Suite struct AdminClientTests {
    @Test func aChunkedAnswerIsReadWholeAndTheTokenIsSent() async throws {
        let admin = try await ScriptedServer.start { request, _ in
            request.uri == "/admin/scale"
                ? .chunked(200, parts: [#"{"pools":"#, #"{"chat":{"desired":3}}}"#])
                : .status(200, body: "{}")
        }
        let client = try #require(AdminClient(url: "http://127.0.0.1:\(admin.port)", token: "t0ken"))
        let object = try #require(await client.json("GET", "/admin/scale"))
        let chat = (object["pools"] as? [String: Any])?["chat"] as? [String: Any]
        #expect(chat?["desired"] as? Int == 3, "\(object)")
        #expect(admin.requests.first?.headers.first(name: "authorization") == "Bearer t0ken")

        let posted = await client.request("POST", "/admin/pools/chat/replicas", body: #"{"replica":"127.0.0.1:1"}"#)
        #expect(posted?.status == 200)
        #expect(admin.requests.last?.body == #"{"replica":"127.0.0.1:1"}"#)
        #expect(admin.requests.last?.headers.first(name: "content-type") == "application/json")

        try await admin.stop()
        #expect(await client.request("GET", "/readyz", timeout: .milliseconds(300)) == nil)
    }
}
