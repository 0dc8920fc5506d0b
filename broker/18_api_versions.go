package broker

import (
	"regexp"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions: v0-4
//
// Behavior:
//   - Lists every API this broker registered (one NN_name.go file each) with its
//     version range; nothing here is kept by hand.
//   - A version above 4 is answered as Kafka does (KIP-511): a v0 response with
//     UNSUPPORTED_VERSION and our ApiVersions range, so the client retries lower.
//   - The response header is always v0, even for flexible versions.
//   - v3+: records the client software name and version of the connection; both
//     must match Kafka's pattern, else INVALID_REQUEST.

func init() { register(18, 0, 4, (*Broker).handleApiVersions) }

var softwareNamePattern = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)

func (b *Broker) handleApiVersions(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if req.Version >= 3 {
		if !softwareNamePattern.MatchString(req.ClientSoftwareName) || !softwareNamePattern.MatchString(req.ClientSoftwareVersion) {
			resp.ErrorCode = kerr.InvalidRequest.Code
			return resp, nil
		}
		cc.swMu.Lock()
		cc.softwareName, cc.softwareVersion = req.ClientSoftwareName, req.ClientSoftwareVersion
		cc.swMu.Unlock()
	}
	resp.ApiKeys = apiVersionKeys()
	return resp, nil
}

func apiVersionKeys() []kmsg.ApiVersionsResponseApiKey {
	var keys []kmsg.ApiVersionsResponseApiKey
	for _, a := range registeredAPIs() {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		keys = append(keys, k)
	}
	return keys
}

// unsupportedApiVersions is the v0 answer to an ApiVersions version we do not serve.
func unsupportedApiVersions() kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	a := apis[18]
	k := kmsg.NewApiVersionsResponseApiKey()
	k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
	resp.ApiKeys = append(resp.ApiKeys, k)
	return resp
}
