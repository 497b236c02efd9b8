package oip_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/modelship/modelship/oip"
)

// fp32Request builds an OIP request body with a rows×cols FP32 input whose
// values look like real features (up to 9 significant digits).
func fp32Request(rows, cols int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := []byte(`{"id":"bench","inputs":[{"name":"input","shape":[` + strconv.Itoa(rows) + "," + strconv.Itoa(cols) + `],"datatype":"FP32","data":[`)
	for i := range rows * cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(rng.Float32()*16), 'g', -1, 32)
	}
	return append(b, "]}]}"...)
}

// plainRequest mirrors InferRequest without the custom decoder, the way a
// server using encoding/json alone decodes it (data becomes []any).
type plainRequest struct {
	ID     string `json:"id"`
	Inputs []struct {
		Name     string  `json:"name"`
		Shape    []int64 `json:"shape"`
		Datatype string  `json:"datatype"`
		Data     any     `json:"data"`
	} `json:"inputs"`
}

// typedRequest is encoding/json's best case: the element type known in advance.
type typedRequest struct {
	ID     string `json:"id"`
	Inputs []struct {
		Name     string    `json:"name"`
		Shape    []int64   `json:"shape"`
		Datatype string    `json:"datatype"`
		Data     []float32 `json:"data"`
	} `json:"inputs"`
}

func BenchmarkDecodeInferRequest(b *testing.B) {
	for _, size := range [][2]int{{1, 64}, {32, 64}} {
		body := fp32Request(size[0], size[1])
		name := fmt.Sprintf("%dx%d", size[0], size[1])
		b.Run(name+"/oip", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := oip.DecodeInferRequest(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/encoding_json_any", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var r plainRequest
				if err := json.Unmarshal(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/encoding_json_typed", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var r typedRequest
				if err := json.Unmarshal(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendInferResponse(b *testing.B) {
	for _, rows := range []int{1, 32} {
		data := make([]float32, rows*10)
		for i := range data {
			data[i] = float32(i%10) / 7
		}
		resp := &oip.InferResponse{ModelName: "mlp", ID: "bench",
			Outputs: []oip.Tensor{{Name: "probabilities", Shape: []int64{int64(rows), 10}, Datatype: "FP32", Data: data}}}
		b.Run(fmt.Sprintf("%dx10/oip", rows), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = oip.AppendInferResponse(buf[:0], resp); err != nil {
					b.Fatal(err)
				}
			}
		})
		plain := struct {
			ModelName string `json:"model_name"`
			ID        string `json:"id"`
			Outputs   []struct {
				Name     string    `json:"name"`
				Shape    []int64   `json:"shape"`
				Datatype string    `json:"datatype"`
				Data     []float32 `json:"data"`
			} `json:"outputs"`
		}{ModelName: "mlp", ID: "bench"}
		plain.Outputs = append(plain.Outputs, struct {
			Name     string    `json:"name"`
			Shape    []int64   `json:"shape"`
			Datatype string    `json:"datatype"`
			Data     []float32 `json:"data"`
		}{"probabilities", []int64{int64(rows), 10}, "FP32", data})
		b.Run(fmt.Sprintf("%dx10/encoding_json", rows), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(&plain); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
