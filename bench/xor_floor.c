/* The plain-C floor for XOR 2-H-1 (sigmoid hidden and output, binary cross-entropy, full-batch
 * gradient descent): the loop of ../shared/peers/xor.py's C peer, compiled for one H (-DH=...),
 * as a function that bench/peers.py calls through ctypes. The starting weights come in (the other
 * peers' xor_init), the last epoch's outputs go out. It computes neither the loss nor the
 * accuracy, and checks nothing. */
#include <math.h>

void xor_floor(int epochs, double lr, const double *W1_in, const double *b1_in, const double *W2_in,
               const double *b2_in, double *p) {
    const double X[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}}, Y[4] = {0, 1, 1, 0};
    double W1[2][H], b1[H], W2[H], b2 = b2_in[0];
    for (int j = 0; j < H; j++) {
        W1[0][j] = W1_in[j];
        W1[1][j] = W1_in[H + j];
        b1[j] = b1_in[j];
        W2[j] = W2_in[j];
    }
    for (int e = 0; e < epochs; e++) {
        double gW1[2][H] = {{0}}, gb1[H] = {0}, gW2[H] = {0}, gb2 = 0;
        for (int i = 0; i < 4; i++) {
            double a[H], z = b2;
            for (int j = 0; j < H; j++) {
                a[j] = 1 / (1 + exp(-(X[i][0] * W1[0][j] + X[i][1] * W1[1][j] + b1[j])));
                z += a[j] * W2[j];
            }
            p[i] = 1 / (1 + exp(-z));
            double d2 = (p[i] - Y[i]) / 4;
            gb2 += d2;
            for (int j = 0; j < H; j++) {
                gW2[j] += a[j] * d2;
                double d1 = d2 * W2[j] * a[j] * (1 - a[j]);
                gb1[j] += d1;
                gW1[0][j] += X[i][0] * d1;
                gW1[1][j] += X[i][1] * d1;
            }
        }
        for (int j = 0; j < H; j++) {
            W2[j] -= lr * gW2[j];
            b1[j] -= lr * gb1[j];
            W1[0][j] -= lr * gW1[0][j];
            W1[1][j] -= lr * gW1[1][j];
        }
        b2 -= lr * gb2;
    }
}
