package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Answer is the final status and body of one request.
type Answer struct {
	Status int
	Body   []byte
}

// ExpectContinueRequest is one request sent with "Expect: 100-continue".
type ExpectContinueRequest struct {
	// URL is the whole address, http://host:port/path.
	URL    string
	Method string
	Header http.Header
	Body   []byte
	// Chunked sends the body in chunked encoding, without a Content-Length,
	// so the server learns its size only by reading it.
	Chunked bool
}

// SendGoClient sends the request with net/http's client, which holds the
// body back until "100 Continue" (or a final status) arrives, on a fresh
// connection each time so every call meets the server's close path.
func SendGoClient(r ExpectContinueRequest) (Answer, error) {
	var body io.Reader = bytes.NewReader(r.Body)
	if r.Chunked {
		body = io.MultiReader(body) // hides the length: sent chunked
	}
	req, err := http.NewRequest(r.Method, r.URL, body)
	if err != nil {
		return Answer{}, err
	}
	req.Header = r.Header.Clone()
	req.Header.Set("Expect", "100-continue")
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		ExpectContinueTimeout: 10 * time.Second, DisableKeepAlives: true,
	}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, fmt.Errorf("read %d body: %w", resp.StatusCode, err)
	}
	return Answer{Status: resp.StatusCode, Body: b}, nil
}

// SendRawTCP sends the request over a plain TCP connection the way RFC 9110
// asks of a client that expects 100-continue: the header first, then the
// body only after "100 Continue"; a final status that comes first is the
// answer and the body is never sent.
func SendRawTCP(r ExpectContinueRequest) (Answer, error) {
	host, path, ok := strings.Cut(strings.TrimPrefix(r.URL, "http://"), "/")
	if !ok || host == "" {
		return Answer{}, fmt.Errorf("url %q: want http://host:port/path", r.URL)
	}
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return Answer{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s /%s HTTP/1.1\r\nHost: %s\r\nExpect: 100-continue\r\n", r.Method, path, host)
	body := r.Body
	if r.Chunked {
		head.WriteString("Transfer-Encoding: chunked\r\n")
		body = fmt.Appendf(nil, "%x\r\n%s\r\n0\r\n\r\n", len(r.Body), r.Body)
	} else {
		fmt.Fprintf(&head, "Content-Length: %d\r\n", len(r.Body))
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	head.WriteString("\r\n")
	if _, err := conn.Write(head.Bytes()); err != nil {
		return Answer{}, fmt.Errorf("write header: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return Answer{}, fmt.Errorf("read first status: %w", err)
	}
	if resp.StatusCode == http.StatusContinue {
		// The server may answer before it has read all of the body, so the
		// body is written while the answer is read; a failed write shows in
		// the answer (a reset) or not at all.
		wrote := make(chan struct{})
		go func() { defer close(wrote); _, _ = conn.Write(body) }()
		defer func() { _ = conn.Close(); <-wrote }() // the close ends a blocked write
		if resp, err = http.ReadResponse(br, nil); err != nil {
			return Answer{}, fmt.Errorf("read status after 100 Continue: %w", err)
		}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, fmt.Errorf("read %d body: %w", resp.StatusCode, err)
	}
	return Answer{Status: resp.StatusCode, Body: b}, nil
}
