package protocol

import "encoding/json"

// marshal encodes a request payload (nil stays absent).
func marshal(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}
