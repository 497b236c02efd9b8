RUN echo hello
