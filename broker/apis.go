package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// apiHandler serves one decoded request. A nil response means none is sent
// (Produce with acks=0); an error closes the connection.
type apiHandler func(b *Broker, cc *conn, req kmsg.Request) (kmsg.Response, error)

// apiDef is one Kafka API this broker serves, registered by the file named after it.
type apiDef struct {
	key, min, max int16
	handle        apiHandler
}

// apis is indexed by API key; nil entries are not served.
var apis [128]*apiDef

// register records the version range and handler of an API. Each NN_name.go file
// calls it from init, and ApiVersions answers from these registrations.
func register(key, minVersion, maxVersion int16, h apiHandler) {
	if apis[key] != nil {
		panic("api key registered twice")
	}
	if maxVersion > kmsg.RequestForKey(key).MaxVersion() {
		panic("api version beyond what kmsg can decode")
	}
	apis[key] = &apiDef{key: key, min: minVersion, max: maxVersion, handle: h}
}

// registeredAPIs lists the served APIs in key order (apis is indexed by key).
func registeredAPIs() []*apiDef {
	var out []*apiDef
	for _, a := range apis {
		if a != nil {
			out = append(out, a)
		}
	}
	return out
}
