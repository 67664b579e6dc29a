// Command shop runs one service of Phoenix's example application:
//
//	shop gateway|orders|inventory [flags]
//
// It is a thin wrapper over shop.Main, which stops gracefully on SIGINT or
// SIGTERM; see package shop for the services and their flags.
package main
