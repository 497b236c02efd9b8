package modelship

// MaxRequestIDLen is the longest request id header Azure's inference server
// accepts (x-request-id, x-ms-request-id, x-ms-client-request-id); longer
// ones get 431.
const MaxRequestIDLen = 100

// RequestIDHeaders applies Azure's inference server rules to a request's id
// headers and returns the values of the response's x-ms-request-id and
// x-ms-client-request-id ("" means leave it out). requestID is the
// request's x-request-id (generated when the caller sent none);
// msRequestID and clientRequestID are what the caller sent.
//
// x-ms-request-id used to be both the request id and the client's id, so:
// a caller's x-ms-request-id is echoed and also stands for the client
// request id when x-ms-client-request-id is missing; without it,
// x-ms-request-id carries the client request id, else the request id.
func RequestIDHeaders(requestID, msRequestID, clientRequestID string) (ms, client string) {
	if msRequestID != "" {
		if clientRequestID == "" {
			clientRequestID = msRequestID
		}
		return msRequestID, clientRequestID
	}
	if clientRequestID != "" {
		return clientRequestID, clientRequestID
	}
	return requestID, ""
}
