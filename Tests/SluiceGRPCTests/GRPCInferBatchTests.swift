import Foundation
import Testing
@testable import SluiceGRPC

@Suite struct GRPCInferBatchTests {
    static func request(id: String, rows: [[Float]], parameters: [String: String] = [:]) -> Inference_ModelInferRequest {
        var request = Inference_ModelInferRequest()
        request.modelName = "iris"
        request.id = id
        for (name, value) in parameters {
            var parameter = Inference_InferParameter()
            parameter.stringParam = value
            request.parameters[name] = parameter
        }
        var input = Inference_ModelInferRequest.InferInputTensor()
        input.name = "x"
        input.datatype = "FP32"
        input.shape = [Int64(rows.count), Int64(rows.first?.count ?? 0)]
        input.contents.fp32Contents = rows.flatMap { $0 }
        request.inputs = [input]
        return request
    }

    static func raw(id: String, values: [Int64]) -> Inference_ModelInferRequest {
        var request = Inference_ModelInferRequest()
        request.modelName = "iris"
        request.id = id
        var input = Inference_ModelInferRequest.InferInputTensor()
        input.name = "x"
        input.datatype = "INT64"
        input.shape = [Int64(values.count), 1]
        request.inputs = [input]
        request.rawInputContents = [values.withUnsafeBytes { Data($0) }]
        return request
    }

    @Test func membersMergeRowsInOrderAndTheAnswerSplitsBackWithTheirIDs() throws {
        let a = try #require(try GRPCInferBatch.member(Self.request(id: "a", rows: [[1, 2]])))
        let b = try #require(try GRPCInferBatch.member(Self.request(id: "b", rows: [[3, 4], [5, 6]])))
        #expect(a.joinKey == b.joinKey)
        #expect(b.rows == 2)
        let merged = GRPCInferBatch.merge([a, b])
        #expect(merged.inputs[0].shape == [3, 2])
        #expect(merged.inputs[0].contents.fp32Contents == [1, 2, 3, 4, 5, 6])
        #expect(merged.id == "")

        var response = Inference_ModelInferResponse()
        response.modelName = "iris"
        var output = Inference_ModelInferResponse.InferOutputTensor()
        output.name = "predict"
        output.datatype = "INT64"
        output.shape = [3]
        output.contents.int64Contents = [0, 1, 2]
        response.outputs = [output]
        let parts = try #require(GRPCInferBatch.split(response, members: [a, b]))
        #expect(parts.map(\.id) == ["a", "b"])
        #expect(parts.map { $0.outputs[0].shape } == [[1], [2]])
        #expect(parts.map { $0.outputs[0].contents.int64Contents } == [[0], [1, 2]])
        // Outputs without the batch's rows cannot be split: the members go alone.
        response.outputs[0].shape = [1]
        response.outputs[0].contents.int64Contents = [7]
        #expect(GRPCInferBatch.split(response, members: [a, b]) == nil)
    }

    @Test func rawContentsMergeAndSplitByteExactly() throws {
        let a = try #require(try GRPCInferBatch.member(Self.raw(id: "a", values: [10])))
        let b = try #require(try GRPCInferBatch.member(Self.raw(id: "b", values: [20])))
        let typed = try #require(try GRPCInferBatch.member(Self.request(id: "c", rows: [[1]])))
        #expect(a.joinKey == b.joinKey)
        #expect(a.joinKey != typed.joinKey)
        let merged = GRPCInferBatch.merge([a, b])
        #expect(merged.rawInputContents == [[Int64(10), 20].withUnsafeBytes { Data($0) }])
        var response = Inference_ModelInferResponse()
        var output = Inference_ModelInferResponse.InferOutputTensor()
        output.name = "y"
        output.datatype = "FP64"
        output.shape = [2, 1]
        response.outputs = [output]
        response.rawOutputContents = [[0.5, 1.5].withUnsafeBytes { Data($0) }]
        let parts = try #require(GRPCInferBatch.split(response, members: [a, b]))
        #expect(parts[0].rawOutputContents == [[0.5].withUnsafeBytes { Data($0) }])
        #expect(parts[1].rawOutputContents == [[1.5].withUnsafeBytes { Data($0) }])
        #expect(parts[1].outputs[0].shape == [1, 1])
    }

    @Test func onlyCallsThatDifferInTheirRowsJoinAndMalformedOnesAreRefused() throws {
        let plain = try #require(try GRPCInferBatch.member(Self.request(id: "a", rows: [[1, 2]])))
        let other = try #require(try GRPCInferBatch.member(Self.request(id: "b", rows: [[1, 2]], parameters: ["content_type": "np"])))
        let wider = try #require(try GRPCInferBatch.member(Self.request(id: "c", rows: [[1, 2, 3]])))
        #expect(plain.joinKey != other.joinKey)
        #expect(plain.joinKey != wider.joinKey)
        var short = Self.request(id: "d", rows: [[1, 2]])
        short.inputs[0].contents.fp32Contents = [1]
        #expect(throws: GRPCInferBatch.Refusal.badInput("x")) { try GRPCInferBatch.member(short) }
        var two = Self.request(id: "e", rows: [[1, 2]])
        var second = two.inputs[0]
        second.name = "z"
        second.shape = [2, 1]
        second.contents.fp32Contents = [1, 2]
        two.inputs.append(second)
        #expect(throws: GRPCInferBatch.Refusal.inconsistentRows) { try GRPCInferBatch.member(two) }
        #expect(throws: GRPCInferBatch.Refusal.noInputs) { try GRPCInferBatch.member(Inference_ModelInferRequest()) }
        // Raw BYTES are length-prefixed: not split by the gateway, so such a call goes alone.
        var bytes = Self.raw(id: "f", values: [1])
        bytes.inputs[0].datatype = "BYTES"
        #expect(try GRPCInferBatch.member(bytes) == nil)
    }

    @Test func framingHoldsOneUncompressedMessage() throws {
        let framed = GRPCMessage.framed([1, 2, 3])
        #expect(framed == [0, 0, 0, 0, 3, 1, 2, 3])
        #expect(framed.withUnsafeBytes { GRPCMessage.messageRange(in: $0) } == 5..<8)
        #expect([UInt8]([1, 0, 0, 0, 0]).withUnsafeBytes { GRPCMessage.messageRange(in: $0) } == nil)  // compressed
        #expect((framed + [0]).withUnsafeBytes { GRPCMessage.messageRange(in: $0) } == nil)  // more than one message
        let request = Self.request(id: "a", rows: [[1, 2]])
        let body = GRPCMessage.framed(try request.serializedBytes())
        #expect(body.withUnsafeBytes { GRPCMessage.decode(Inference_ModelInferRequest.self, from: $0) } == request)
        #expect([UInt8]([0, 0, 0, 0, 2, 0xFF, 0xFF]).withUnsafeBytes { GRPCMessage.decode(Inference_ModelInferRequest.self, from: $0) } == nil)
    }
}
