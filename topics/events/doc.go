// Package events defines the values that travel on the backinstock topics and
// the edge: the Go types, their validation and their strict decoding.
//
// Every consumer decodes with the DecodeX functions and every producer encodes
// with Encode, so a record that one side accepts the other side accepts too,
// and a record that is wrong is rejected with a message that names the field
// (the dead-letter topic keeps that message as the reason). The JSON Schemas in
// topics/schemas say the same thing for readers in other languages; a test
// keeps the two in agreement.
package events
