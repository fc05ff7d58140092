// kyrodb_server: wiring only (config -> Service -> HTTP + gRPC servers -> signals).
int main() { return 0; }
